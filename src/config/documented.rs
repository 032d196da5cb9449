//! arbor-config(5) and the LDAP table of docs/access.md state every setting with the default
//! the code uses, and name no setting the code does not read. A stated default is checked by
//! setting it explicitly: the resulting configuration must be the one of not setting it.

use super::*;
use crate::auth::ldap::Directory;

const MANUAL: &str = include_str!("../../man/arbor-config.5.scd");
const ACCESS: &str = include_str!("../../docs/access.md");

/// What a document says of a setting's default.
#[derive(Debug, Clone, PartialEq)]
enum Stated {
    /// A value (empty for "unset" and "empty").
    Value(String),
    /// Required, or described in prose: documented, but not a value to compare.
    Prose,
}

/// Every setting named by a term of arbor-config(5), a line followed by an indented one
/// (`*DLREPO_X* (default *v*), *DLREPO_Y* (default ...)`), with the parenthesis that
/// follows it or the next one.
fn manual() -> Vec<(String, Option<Stated>)> {
    let term = Regex::new(r"\*DLREPO_([A-Z0-9_]+)\*(?: \(([^)]*)\))?").expect("regex");
    let lines: Vec<&str> = MANUAL.lines().collect();
    let terms = lines
        .windows(2)
        .filter(|w| w[0].starts_with("*DLREPO_") && w[1].starts_with('\t'))
        .map(|w| w[0]);
    let mut out = Vec::new();
    for line in terms {
        let mut pending = Vec::new();
        for m in term.captures_iter(line) {
            pending.push(m[1].to_owned());
            if let Some(paren) = m.get(2) {
                let stated = stated(paren.as_str());
                out.extend(pending.drain(..).map(|k| (k, Some(stated.clone()))));
            }
        }
        out.extend(pending.into_iter().map(|k| (k, None)));
    }
    out
}

/// `default *1337*`, `default _./arbor-data_`, `default unset; arbor only`, `default
/// empty`, `default: see below`, `required with ...`.
fn stated(paren: &str) -> Stated {
    if paren.starts_with("required") || paren.starts_with("default:") {
        return Stated::Prose;
    }
    let value = paren
        .strip_prefix("default ")
        .unwrap_or_else(|| panic!("arbor-config(5): cannot read ({paren})"));
    let value = value.split(';').next().unwrap_or_default().trim();
    match value {
        "unset" | "empty" => Stated::Value(String::new()),
        v => {
            let bare = v
                .strip_prefix('*')
                .and_then(|v| v.strip_suffix('*'))
                .or_else(|| v.strip_prefix('_').and_then(|v| v.strip_suffix('_')))
                .unwrap_or_else(|| panic!("arbor-config(5): cannot read ({paren})"));
            Stated::Value(bare.to_owned())
        }
    }
}

/// The rows of docs/access.md's tables that start with a setting and its default.
fn access_table() -> Vec<(String, Stated)> {
    let row = Regex::new(r"^\| `DLREPO_([A-Z0-9_]+)` \| ([^|]+) \|").expect("regex");
    ACCESS
        .lines()
        .filter_map(|l| row.captures(l))
        .map(|m| {
            let stated = match m[2].trim() {
                "required" => Stated::Prose,
                "unset" | "empty" => Stated::Value(String::new()),
                v => Stated::Value(v.trim_matches('`').to_owned()),
            };
            (m[1].to_owned(), stated)
        })
        .collect()
}

/// Enough LDAP settings for the directory to be configured, so that its own defaults show.
const LDAP: &[(&str, &str)] = &[
    ("LDAP_URL", "ldap://ldap.example.com"),
    ("LDAP_USER_FILTER", "(uid={login})"),
    ("LDAP_GROUPS_FILTER", "(member={dn})"),
];

/// Everything the settings decide, with `key` set to `value` (or not set).
fn observed(key: &str, value: Option<&str>) -> String {
    let mut env: Vec<(String, String)> = LDAP
        .iter()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| (format!("DLREPO_{k}"), (*v).to_owned()))
        .collect();
    if let Some(v) = value {
        env.push((format!("DLREPO_{key}"), v.to_owned()));
    }
    let c = Config::from_sources(None, env)
        .unwrap_or_else(|e| panic!("the documented default of DLREPO_{key} is refused: {e}"));
    let directory = Directory::from_config(&c);
    // LDAP values are kept raw in `other`; the directory shows what they mean.
    let typed = Config {
        other: BTreeMap::new(),
        ..c
    };
    format!("{typed:#?}\n{directory:#?}")
}

fn check_default(source: &str, key: &str, stated: &Stated) {
    let Stated::Value(value) = stated else {
        return;
    };
    // The manual writes relative paths with their `./` for clarity.
    let value = value.strip_prefix("./").unwrap_or(value);
    assert_eq!(
        observed(key, Some(value)),
        observed(key, None),
        "{source} says DLREPO_{key} defaults to {value:?}, which is not what the code does"
    );
}

#[test]
fn every_setting_is_in_the_manual_with_its_default() {
    let documented = manual();
    for key in KEYS {
        let stated = documented
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("DLREPO_{key} is missing from man/arbor-config.5.scd"));
        let stated = stated
            .1
            .as_ref()
            .unwrap_or_else(|| panic!("arbor-config(5) gives no default for DLREPO_{key}"));
        check_default("arbor-config(5)", key, stated);
    }
}

#[test]
fn the_manual_names_only_settings_the_code_reads() {
    for (key, _) in manual() {
        assert!(
            KEYS.contains(&key.as_str()),
            "arbor-config(5) documents DLREPO_{key}, which arbor does not read"
        );
    }
}

#[test]
fn the_ldap_table_of_the_access_guide_states_the_defaults() {
    let rows = access_table();
    assert!(
        rows.len() >= 7,
        "docs/access.md lost its LDAP table: {rows:?}"
    );
    for (key, stated) in rows {
        assert!(
            KEYS.contains(&key.as_str()),
            "docs/access.md documents DLREPO_{key}, which arbor does not read"
        );
        check_default("docs/access.md", &key, &stated);
    }
}

#[test]
fn a_wrong_default_is_caught() {
    check_default("this test", "LISTEN_PORT", &Stated::Value("1337".into()));
    let wrong = std::panic::catch_unwind(|| {
        check_default("this test", "LISTEN_PORT", &Stated::Value("8080".into()))
    });
    assert!(wrong.is_err());
    assert_eq!(stated("default *1337*"), Stated::Value("1337".into()));
    assert_eq!(
        stated("default unset; arbor only"),
        Stated::Value("".into())
    );
    assert_eq!(stated("required with *DLREPO_LDAP_URL*"), Stated::Prose);
}

/// Every `DLREPO_*` name in the manuals, the guides and the examples is a setting, a
/// variable of the client, or one of the examples of unknown variables.
#[test]
// The test reads the repository's documents.
#[allow(clippy::disallowed_methods)]
fn the_documents_name_only_settings_the_code_reads() {
    // Placeholders and examples of names arbor does not know, on purpose.
    const NOT_SETTINGS: &[&str] = &["NAME", "VERSION", "ACL_DIR"];
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![top.join("README.md")];
    for dir in ["docs", "man", "examples/config"] {
        for entry in std::fs::read_dir(top.join(dir)).expect("document directory") {
            files.push(entry.expect("entry").path());
        }
    }
    // A name followed by `_*` (or scdoc's `\_\*`) is a prefix: `DLREPO_LDAP_*`.
    let name = Regex::new(r"DLREPO_([A-Z0-9_]*[A-Z0-9])(\\?_\\?\*)?").expect("regex");
    let mut seen = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for m in name.captures_iter(&text) {
            let key = &m[1];
            let known = if m.get(2).is_some() {
                KEYS.iter().any(|k| k.starts_with(&format!("{key}_")))
            } else {
                KEYS.contains(&key) || CLIENT_ONLY.contains(&key) || NOT_SETTINGS.contains(&key)
            };
            assert!(
                known,
                "{} names DLREPO_{key}, which is not a setting arbor reads",
                file.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 100, "only {seen} names found: is the pattern right?");
}

/// The example configurations parse, with every commented-out setting switched on too.
#[test]
fn the_examples_are_valid_settings() {
    let toml = include_str!("../../examples/config/arbor.toml");
    let assignment = Regex::new(r"^#\s*([a-z_]+\s*=.*)$").expect("regex");
    let all: String = toml
        .lines()
        .map(|l| match assignment.captures(l) {
            Some(m) => format!("{}\n", &m[1]),
            None => format!("{l}\n"),
        })
        .collect();
    let c = Config::from_sources(Some(("arbor.toml", &all)), Vec::new())
        .unwrap_or_else(|e| panic!("examples/config/arbor.toml: {e}"));
    Directory::from_config(&c).unwrap_or_else(|e| panic!("examples/config/arbor.toml: {e}"));

    let env = include_str!("../../examples/config/default-arbor");
    let mut settings = Vec::new();
    for line in env.lines() {
        let Some((name, value)) = line.trim_start_matches('#').split_once('=') else {
            continue;
        };
        if name.starts_with("DLREPO_") {
            // systemd strips the quotes of an EnvironmentFile value.
            settings.push((name.to_owned(), value.trim_matches('\'').to_owned()));
        }
    }
    assert!(settings.len() > 30, "{settings:?}");
    let c = Config::from_sources(None, settings)
        .unwrap_or_else(|e| panic!("examples/config/default-arbor: {e}"));
    Directory::from_config(&c).unwrap_or_else(|e| panic!("examples/config/default-arbor: {e}"));
}
