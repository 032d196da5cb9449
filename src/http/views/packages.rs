//! The copy-paste lines a format page shows when the format is a package repository
//! (docs/packages.md): where to put the server's key and the `sources.list` or `.repo`
//! entry that points at the format.

use super::encode_segment;
use super::snippet::{Snippet, shell_word};
use crate::storage::page_info::Repos;

/// Where apt's keyring goes; the same path in every snippet and in docs/packages.md.
const APT_KEYRING: &str = "/etc/apt/keyrings/arbor.gpg";

/// The snippets for a format at `url` (an absolute path ending in `/`, not yet
/// percent-encoded) on a server reached at `base`; `signed` says whether the server has a
/// signing key.
pub fn repo_snippets(repos: Repos, base: &str, url: &str, signed: bool) -> Vec<Snippet> {
    let url = url
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/");
    let mut out = Vec::new();
    if repos.deb {
        if signed {
            out.push(Snippet {
                caption: "The server's key, once:".into(),
                text: format!(
                    "sudo curl -fsSL -o {APT_KEYRING} {}",
                    shell_word(&format!("{base}/pubkey.gpg"))
                ),
            });
        }
        let options = if signed {
            format!("signed-by={APT_KEYRING}")
        } else {
            // Unsigned indexes: apt only accepts them when told to trust the source.
            "trusted=yes".into()
        };
        out.push(Snippet {
            caption: "APT, in /etc/apt/sources.list.d/arbor.list:".into(),
            text: format!("deb [{options}] {base}{url} ./"),
        });
    }
    if repos.rpm {
        // Packages are checked through repomd.xml's signature, which covers their sums;
        // arbor does not sign the packages themselves.
        let (repo_check, key) = if signed {
            ("1", format!("\ngpgkey={base}/pubkey"))
        } else {
            ("0", String::new())
        };
        out.push(Snippet {
            caption: "dnf, in /etc/yum.repos.d/arbor.repo:".into(),
            text: format!(
                "[arbor]\nname=arbor {url}\nbaseurl={base}{url}\ngpgcheck=0\n\
                 repo_gpgcheck={repo_check}{key}"
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "/branches/main/t1/j/pkgs/";

    #[test]
    fn the_url_is_encoded() {
        let deb = Repos {
            deb: true,
            rpm: false,
        };
        let got = repo_snippets(deb, "http://h", "/branches/a b/t/j/f/", false);
        assert_eq!(
            got[0].text,
            "deb [trusted=yes] http://h/branches/a%20b/t/j/f/ ./"
        );
    }

    fn texts(repos: Repos, signed: bool) -> Vec<String> {
        repo_snippets(repos, "http://h:1", URL, signed)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn apt_lines_use_the_key_when_there_is_one() {
        let deb = Repos {
            deb: true,
            rpm: false,
        };
        assert_eq!(
            texts(deb, true),
            [
                "sudo curl -fsSL -o /etc/apt/keyrings/arbor.gpg http://h:1/pubkey.gpg",
                "deb [signed-by=/etc/apt/keyrings/arbor.gpg] http://h:1/branches/main/t1/j/pkgs/ ./",
            ]
        );
        assert_eq!(
            texts(deb, false),
            ["deb [trusted=yes] http://h:1/branches/main/t1/j/pkgs/ ./"]
        );
    }

    #[test]
    fn a_repo_file_for_rpm_and_nothing_for_other_formats() {
        let rpm = Repos {
            deb: false,
            rpm: true,
        };
        let signed = texts(rpm, true);
        assert_eq!(signed.len(), 1);
        assert!(signed[0].contains("\nbaseurl=http://h:1/branches/main/t1/j/pkgs/\n"));
        assert!(signed[0].ends_with("repo_gpgcheck=1\ngpgkey=http://h:1/pubkey"));
        assert!(texts(rpm, false)[0].ends_with("repo_gpgcheck=0"));
        assert!(texts(Repos::default(), true).is_empty());
    }
}
