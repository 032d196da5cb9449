//! Pure parsing of `/v2/...` paths (spec/CONTAINER.md §1–2): the segment count of the name
//! picks branch/job or product, with an optional `u/{user}/` prefix. No I/O.

use crate::model::{BranchRef, Digest, Name, Scope};
use crate::storage::registry::ImageRepo;
use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/{name}/tags/list`
    Tags(ImageRepo),
    /// `/v2/{name}/manifests/{reference}`
    Manifest(ImageRepo, String),
    /// `/v2/{name}/blobs/{digest}`
    Blob(ImageRepo, String),
    /// `/v2/{name}/blobs/uploads/`
    Uploads(ImageRepo),
    /// `/v2/{name}/blobs/uploads/{id}`
    Upload(ImageRepo, String),
    /// `/v2/{name}/referrers/{digest}`
    Referrers(ImageRepo, String),
}

/// Parses a repository name from its segments; `None` for any other count (plain 404).
///
/// A name that starts with `u` is a user repository's or nothing. As a root branch `u` (or
/// product `u`), `/v2/u/{user}/...` with two or three segments would be checked against
/// the same ACL path as the user's own repositories, so a rule such as
/// `rw /v2/u/$user/**` would let every user write into the root repository (docs/registry.md).
pub fn repo(segs: &[String]) -> Option<ImageRepo> {
    let (scope, rest) = match segs {
        [u, user, rest @ ..] if u.eq_ignore_ascii_case("u") => {
            if rest.len() != 2 && rest.len() != 3 {
                return None;
            }
            (Scope::User(Name::parse(user).ok()?), rest)
        }
        [u, ..] if u.eq_ignore_ascii_case("u") => return None,
        _ => (Scope::Root, segs),
    };
    let names: Vec<Name> = rest
        .iter()
        .map(|s| Name::parse(s).ok())
        .collect::<Option<_>>()?;
    match <[Name; 2]>::try_from(names.clone()) {
        Ok([branch, job]) => Some(ImageRepo::Job {
            branch: BranchRef { scope, branch },
            job,
        }),
        Err(_) => Some(ImageRepo::Product {
            scope,
            path: <[Name; 3]>::try_from(names).ok()?,
        }),
    }
}

/// `raw` is the request path as sent (percent-encoded).
pub fn parse(raw: &str) -> Option<Target> {
    let rest = raw.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Target::Base);
    }
    let segs: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let n = segs.len();
    let last = segs[n - 1].clone();
    let tail = |k: usize| {
        segs[n.saturating_sub(k)..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    };
    if segs == ["_catalog"] {
        return Some(Target::Catalog);
    }
    if n >= 3 && tail(2) == ["tags", "list"] {
        return Some(Target::Tags(repo(&segs[..n - 2])?));
    }
    if n >= 4 && tail(3) == ["blobs", "uploads", ""] {
        return Some(Target::Uploads(repo(&segs[..n - 3])?));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        return Some(Target::Upload(repo(&segs[..n - 3])?, last));
    }
    if n >= 3 && !last.is_empty() {
        let name = repo(&segs[..n - 2]);
        match segs[n - 2].as_str() {
            "manifests" => return Some(Target::Manifest(name?, last)),
            "blobs" => return Some(Target::Blob(name?, last)),
            "referrers" => return Some(Target::Referrers(name?, last)),
            _ => {}
        }
    }
    None
}

/// A manifest reference as storage reads it: a digest in its canonical spelling, or a tag
/// lower-cased.
fn canonical_reference(reference: &str) -> String {
    if reference.contains(':') {
        return Digest::parse(Some(reference))
            .map(|d| d.to_string())
            .unwrap_or_else(|_| reference.to_owned());
    }
    reference.to_lowercase()
}

impl Target {
    /// The path ACLs are matched against (spec/AUTH.md §7): the repository name as storage
    /// maps it, so `/v2/SECRET/img/...`, `/v2/%53ecret/img/...` and `/v2/secret/img/...`
    /// are one repository and one check.
    pub fn canonical_path(&self) -> String {
        match self {
            Target::Base => "/v2/".to_owned(),
            Target::Catalog => "/v2/_catalog".to_owned(),
            Target::Tags(r) => format!("/v2/{}/tags/list", r.name()),
            Target::Manifest(r, reference) => {
                format!(
                    "/v2/{}/manifests/{}",
                    r.name(),
                    canonical_reference(reference)
                )
            }
            Target::Blob(r, d) => format!("/v2/{}/blobs/{}", r.name(), canonical_reference(d)),
            Target::Uploads(r) => format!("/v2/{}/blobs/uploads/", r.name()),
            Target::Upload(r, id) => format!("/v2/{}/blobs/uploads/{id}", r.name()),
            Target::Referrers(r, d) => {
                format!("/v2/{}/referrers/{}", r.name(), canonical_reference(d))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(scope: Scope, b: &str, j: &str) -> ImageRepo {
        ImageRepo::Job {
            branch: BranchRef {
                scope,
                branch: Name::parse(b).unwrap(),
            },
            job: Name::parse(j).unwrap(),
        }
    }

    #[test]
    fn segment_counts_pick_the_mapping() {
        let main = job(Scope::Root, "main", "myjob");
        assert_eq!(parse("/v2/"), Some(Target::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Target::Catalog));
        assert_eq!(
            parse("/v2/main/myjob/manifests/V1"),
            Some(Target::Manifest(main.clone(), "V1".into()))
        );
        assert_eq!(
            parse("/v2/main/myjob/tags/list"),
            Some(Target::Tags(main.clone()))
        );
        assert_eq!(
            parse("/v2/main/myjob/blobs/uploads/"),
            Some(Target::Uploads(main.clone()))
        );
        assert_eq!(
            parse("/v2/main/myjob/blobs/uploads/abc"),
            Some(Target::Upload(main.clone(), "abc".into()))
        );
        assert_eq!(
            parse("/v2/main/myjob/blobs/sha256%3Aab"),
            Some(Target::Blob(main, "sha256:ab".into()))
        );
        let bob = Scope::User(Name::parse("bob").unwrap());
        assert_eq!(
            parse("/v2/u/bob/main/j/manifests/t"),
            Some(Target::Manifest(job(bob.clone(), "main", "j"), "t".into()))
        );
        let names = |v: [&str; 3]| v.map(|s| Name::parse(s).unwrap());
        assert_eq!(
            parse("/v2/p/v/pb/manifests/1.0"),
            Some(Target::Manifest(
                ImageRepo::Product {
                    scope: Scope::Root,
                    path: names(["p", "v", "pb"])
                },
                "1.0".into()
            ))
        );
        assert_eq!(
            parse("/v2/u/bob/p/v/pb/blobs/x"),
            Some(Target::Blob(
                ImageRepo::Product {
                    scope: bob,
                    path: names(["p", "v", "pb"])
                },
                "x".into()
            ))
        );
        assert_eq!(parse("/v2/a/manifests/t"), None);
        assert_eq!(parse("/v2/a/b/c/d/manifests/t"), None);
        assert_eq!(parse("/v2/.blobs/x/manifests/t"), None);
        assert_eq!(parse("/v2/a/b/other/t"), None);
        // `u` starts a user repository's name only: never the root branch or product `u`,
        // whose ACL paths would be the user's.
        for root_u in [
            "/v2/u/carol/manifests/t",
            "/v2/U/carol/blobs/uploads/",
            "/v2/%75/carol/tags/list",
            "/v2/u/carol/x/manifests/1.0",
        ] {
            assert_eq!(parse(root_u), None, "{root_u}");
        }
    }

    #[test]
    fn case_and_encoding_give_one_canonical_path() {
        let p = |raw: &str| parse(raw).unwrap().canonical_path();
        let want = "/v2/secret/img/manifests/v1";
        for raw in [
            "/v2/SECRET/img/manifests/v1",
            "/v2/%53ecret/img/manifests/V1",
            "/v2/Secret/IMG/manifests/v1",
        ] {
            assert_eq!(p(raw), want, "{raw}");
        }
        let hex = "ab".repeat(32);
        assert_eq!(
            p(&format!(
                "/v2/Secret/img/blobs/SHA256:{}",
                hex.to_uppercase()
            )),
            format!("/v2/secret/img/blobs/sha256:{hex}")
        );
        assert_eq!(
            p("/v2/u/Bob/Main/J/blobs/uploads/"),
            "/v2/u/bob/main/j/blobs/uploads/"
        );
    }

    #[test]
    fn names_round_trip() {
        let r = repo(&["u".into(), "Bob".into(), "Main".into(), "J".into()]).unwrap();
        assert_eq!(r.name(), "u/bob/main/j");
    }
}
