//! The copy-paste lines that job, format and product-version pages show to fetch what they
//! show: the arbor client, curl for the tar, and docker or skopeo for a container image.

use super::encode_segment;
use super::snippet::{Snippet, shell_word};
use crate::model::{FormatRef, JobRef, Scope, VersionRef};

/// What a page offers to fetch.
pub struct Fetchable {
    /// The entity's URL path, not yet percent-encoded, ending in `/`.
    pub url: String,
    /// The image reference (without the host) when it holds a container image.
    pub image: Option<String>,
}

impl Fetchable {
    pub fn job(j: &JobRef, has_container: bool) -> Fetchable {
        let repo = format!(
            "{}{}/{}",
            user_prefix(&j.tag.branch.scope),
            j.tag.branch.branch,
            j.job
        );
        Fetchable {
            url: j.url(),
            image: has_container.then(|| format!("{repo}:{}", j.tag.tag)),
        }
    }

    pub fn version(v: &VersionRef, has_container: bool) -> Fetchable {
        let repo = format!(
            "{}{}/{}/{}",
            user_prefix(&v.scope),
            v.product,
            v.variant,
            v.product_branch
        );
        Fetchable {
            url: v.url(),
            image: has_container.then(|| format!("{repo}:{}", v.version)),
        }
    }

    /// A format; the `container` format is its job's (or version's) image.
    pub fn format(f: &FormatRef) -> Fetchable {
        let container = f.name().as_str() == "container";
        let image = match f {
            FormatRef::Job { job, .. } => Fetchable::job(job, container).image,
            FormatRef::Version { version, .. } => Fetchable::version(version, container).image,
        };
        Fetchable {
            url: f.url(),
            image,
        }
    }
}

/// Registry names of user repositories start with `u/{user}/` (spec/CONTAINER.md §1).
fn user_prefix(scope: &Scope) -> String {
    match scope {
        Scope::Root => String::new(),
        Scope::User(u) => format!("u/{u}/"),
    }
}

/// The lines for `what` on a server reached at `base` (`http://host:port`).
pub fn fetch_snippets(base: &str, what: &Fetchable) -> Vec<Snippet> {
    let path = what.url.trim_matches('/');
    let name = path.rsplit('/').next().unwrap_or(path);
    let encoded: Vec<String> = path.split('/').map(encode_segment).collect();
    let mut out = vec![
        Snippet {
            caption: "With the arbor client (verified, in parallel):".into(),
            text: format!(
                "arbor -U {} -p / download {} {}",
                shell_word(base),
                shell_word(path),
                shell_word(&format!("{name}/"))
            ),
        },
        Snippet {
            caption: "As one tar, with curl:".into(),
            text: format!(
                "curl -fL -o {} {}",
                shell_word(&format!("{name}.tar")),
                shell_word(&format!("{base}/{}.tar", encoded.join("/")))
            ),
        },
    ];
    if let Some(image) = &what.image {
        let host = base.split_once("://").map_or(base, |(_, h)| h);
        // Registries reached over plain http must be allowed explicitly.
        let plain = base.starts_with("http://");
        let tls = if plain { " --src-tls-verify=false" } else { "" };
        out.push(Snippet {
            caption: if plain {
                "The image (docker needs this host in insecure-registries):".into()
            } else {
                "The image:".into()
            },
            text: format!(
                "docker pull {}\nskopeo copy{tls} {} {}",
                shell_word(&format!("{host}/{image}")),
                shell_word(&format!("docker://{host}/{image}")),
                shell_word(&format!("oci:{name}"))
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(what: &Fetchable) -> Vec<String> {
        fetch_snippets("http://h:1", what)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn a_job_with_an_image() {
        let what = Fetchable {
            url: "/branches/main/v1/build/".into(),
            image: Some("main/build:v1".into()),
        };
        assert_eq!(
            texts(&what),
            [
                "arbor -U http://h:1 -p / download branches/main/v1/build build/",
                "curl -fL -o build.tar http://h:1/branches/main/v1/build.tar",
                "docker pull h:1/main/build:v1\n\
                 skopeo copy --src-tls-verify=false docker://h:1/main/build:v1 oci:build",
            ]
        );
    }

    /// What the shell would run outside quotes: nothing but plain words.
    fn unquoted(line: &str) -> String {
        let (mut out, mut quoted, mut chars) = (String::new(), false, line.chars());
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (false, '\\') => {
                    chars.next();
                }
                (_, '\'') => quoted = !quoted,
                (false, c) => out.push(c),
                (true, _) => {}
            }
        }
        out
    }

    #[test]
    fn names_never_run_as_commands() {
        for evil in ["k;id;x", "m$(id)x", "a&b|c", "q'x;id;'"] {
            let what = Fetchable {
                url: format!("/branches/{evil}/t/{evil}/"),
                image: Some(format!("{evil}/{evil}:t")),
            };
            for line in texts(&what)
                .iter()
                .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
            {
                let outside = unquoted(&line);
                assert!(
                    !outside.contains([';', '$', '(', ')', '&', '|', '`', '<', '>']),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn odd_names_are_quoted_and_encoded() {
        let what = Fetchable {
            url: "/~bob/products/p/v/1.x/it's 1/".into(),
            image: None,
        };
        assert_eq!(
            texts(&what),
            [
                "arbor -U http://h:1 -p / download '~bob/products/p/v/1.x/it'\\''s 1' 'it'\\''s 1/'",
                "curl -fL -o 'it'\\''s 1.tar' 'http://h:1/~bob/products/p/v/1.x/it'\\''s%201.tar'",
            ]
        );
    }
}
