//! arbor's own test hooks, the `[testing]` table of the TOML file (arbor-config(5)): pauses
//! at named points of a write, so that a black-box test can kill the server, or race it,
//! exactly there. Never for production: a pause holds a blocking thread and, for the
//! collector, the lock on `.blobs/`. Only the file sets them, never the environment, so a
//! stray variable cannot slow a production server down.

use super::ConfigError;
use std::time::Duration;

/// The test hooks; the default is none, and then they cost nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// `pause_at` and `pause_ms`: the thread that passes the point `pause_at` (one of the
    /// names given to [`TestHooks::pause`]) sleeps `pause_ms` there.
    pub pause: Option<(String, Duration)>,
    /// `gc_pause_ms`: the orphan collector sleeps this long between its last check of an
    /// old blob and its unlink.
    pub gc_pause: Option<Duration>,
}

impl TestHooks {
    /// The `[testing]` table of the file `path`. Its keys are checked as strictly as the
    /// file's others: a misspelt hook would make its test pass for the wrong reason.
    pub(super) fn from_table(path: &str, table: toml::Table) -> Result<TestHooks, ConfigError> {
        let mut at = None;
        let mut ms = None;
        let mut hooks = TestHooks::default();
        for (key, value) in table {
            let invalid = |why: &str| ConfigError::Invalid {
                source_name: path.to_owned(),
                key: format!("testing.{key}"),
                value: value.to_string(),
                why: why.to_owned(),
            };
            let millis = || {
                value
                    .as_integer()
                    .and_then(|i| u64::try_from(i).ok())
                    .map(Duration::from_millis)
                    .ok_or_else(|| invalid("expected a non-negative integer"))
            };
            match key.as_str() {
                "pause_at" => {
                    let point = value.as_str().ok_or_else(|| invalid("expected a string"))?;
                    at = Some(point.to_owned());
                }
                "pause_ms" => ms = Some(millis()?),
                "gc_pause_ms" => hooks.gc_pause = Some(millis()?),
                _ => {
                    return Err(ConfigError::Unknown {
                        source_name: path.to_owned(),
                        closest: "testing.pause_at, testing.pause_ms or testing.gc_pause_ms".into(),
                        key: format!("testing.{key}"),
                    });
                }
            }
        }
        hooks.pause = match (at, ms) {
            (Some(at), Some(ms)) => Some((at, ms)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    source_name: path.to_owned(),
                    key: "testing".into(),
                    value: "pause_at / pause_ms".into(),
                    why: "pause_at and pause_ms go together".into(),
                });
            }
        };
        Ok(hooks)
    }

    /// Holds the calling thread when `point` is the configured pause point.
    pub fn pause(&self, point: &str) {
        if let Some((at, how_long)) = &self.pause
            && at == point
        {
            std::thread::sleep(*how_long);
        }
    }

    /// Holds the collector between its last check of an orphan and its unlink.
    pub fn pause_gc(&self) {
        if let Some(how_long) = self.gc_pause {
            std::thread::sleep(how_long);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(file: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some(("a.toml", file)), Vec::new())
    }

    #[test]
    fn hooks_come_from_the_testing_table_only() {
        assert_eq!(load("").unwrap().testing, TestHooks::default());
        let c = load("listen_port = 1\n[testing]\npause_at = 'x'\npause_ms = 5\ngc_pause_ms = 7\n")
            .unwrap();
        assert_eq!(c.listen_port, 1);
        assert_eq!(
            c.testing,
            TestHooks {
                pause: Some(("x".into(), Duration::from_millis(5))),
                gc_pause: Some(Duration::from_millis(7)),
            }
        );
        // The environment has no way to set them.
        let c = Config::from_sources(None, [("DLREPO_TESTING".into(), "x".into())]).unwrap();
        assert_eq!(c.testing, TestHooks::default());
    }

    #[test]
    fn bad_hooks_are_refused() {
        for (file, says) in [
            ("[testing]\npause_at = 'x'\n", "go together"),
            ("[testing]\npause_ms = 1\n", "go together"),
            (
                "[testing]\npause_ms = -1\npause_at = 'x'\n",
                "testing.pause_ms",
            ),
            (
                "[testing]\npause_at = 3\npause_ms = 1\n",
                "testing.pause_at",
            ),
            (
                "[testing]\ngc_pause = 1\n",
                "unknown setting testing.gc_pause",
            ),
            ("testing = 1\n", "testing"),
        ] {
            let e = load(file).unwrap_err().to_string();
            assert!(e.contains(says), "{file}: {e}");
        }
    }
}
