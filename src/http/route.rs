//! Pure parsing of a request path into a typed [`Route`] (spec/API.md §1.1, §2): per-segment
//! percent-decoding, the `/~{user}` prefix, bundle suffix (`.tar`, `.tar.gz`, …) and
//! `.sha256` precedence and the multi-segment artifact path. No I/O.

use crate::model::{BranchRef, Name, NotFound, Scope};
use crate::storage::apt::AptIndex;
use crate::storage::encodings::Encoding;
use percent_encoding::percent_decode_str;

/// What a format URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPart {
    /// `{format}.tar`, or another encoding of the bundle (`{format}.zip`, …)
    Tar(Encoding),
    /// `{format}.sha256`
    Sha256,
    /// `{format}` without the slash: redirects to the single file or the dir.
    Bare,
    /// `{format}/`
    Dir,
    /// `{format}/{artifact}`, decoded, as sent (may end with `/`).
    Artifact(String),
}

/// The entity a format URL hangs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatParent {
    Job {
        branch: BranchRef,
        tag: Name,
        job: Name,
    },
    Version {
        scope: Scope,
        path: [Name; 3],
        version: Name,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Home(Scope),
    /// `/~{user}` without the trailing slash.
    UserBare(Name),
    Branches {
        scope: Scope,
        slash: bool,
    },
    Branch {
        branch: BranchRef,
        slash: bool,
    },
    Tag {
        branch: BranchRef,
        tag: Name,
        slash: bool,
    },
    /// `{job}.tar` and the other encodings of the job's bundle.
    JobTar {
        branch: BranchRef,
        tag: Name,
        job: Name,
        enc: Encoding,
    },
    Job {
        branch: BranchRef,
        tag: Name,
        job: Name,
        slash: bool,
    },
    Format {
        parent: FormatParent,
        format: Name,
        part: FormatPart,
    },
    /// `/products/`, `/products/{p}/`, `/products/{p}/{v}/`, `/products/{p}/{v}/{pb}/`.
    Products {
        scope: Scope,
        path: Vec<Name>,
        slash: bool,
    },
    Version {
        scope: Scope,
        path: [Name; 3],
        version: Name,
        slash: bool,
    },
    VersionTar {
        scope: Scope,
        path: [Name; 3],
        version: Name,
        enc: Encoding,
    },
    /// `{product_branch}/Packages` and the other APT index names, spelled exactly so: the
    /// branch as one archive (a version of that name wins, see `resources::products`).
    BranchIndex {
        scope: Scope,
        path: [Name; 3],
        index: AptIndex,
    },
}

fn decode(seg: &str) -> Result<String, NotFound> {
    percent_decode_str(seg)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| NotFound)
}

fn name(seg: &str) -> Result<Name, NotFound> {
    Name::parse(seg)
}

impl Route {
    /// Parses the raw (still percent-encoded) path of a request.
    pub fn parse(raw_path: &str) -> Result<Route, NotFound> {
        let raw = raw_path.strip_prefix('/').ok_or(NotFound)?;
        let segs: Vec<String> = raw.split('/').map(decode).collect::<Result<_, _>>()?;
        let mut rest: &[String] = &segs;
        let mut scope = Scope::Root;
        if let Some(user) = rest.first().and_then(|s| s.strip_prefix('~')) {
            let user = name(user)?;
            rest = &rest[1..];
            if rest.is_empty() {
                return Ok(Route::UserBare(user));
            }
            scope = Scope::User(user);
        }
        // A trailing slash shows up as a final empty segment.
        let slash = rest.last().is_some_and(String::is_empty);
        let body: Vec<&str> = if slash {
            rest[..rest.len() - 1].iter().map(String::as_str).collect()
        } else {
            rest.iter().map(String::as_str).collect()
        };
        match body.as_slice() {
            [] => Ok(Route::Home(scope)),
            ["branches", tail @ ..] => Route::parse_branches(scope, tail, slash),
            ["products", tail @ ..] => Route::parse_products(scope, tail, slash),
            _ => Err(NotFound),
        }
    }

    fn parse_branches(scope: Scope, tail: &[&str], slash: bool) -> Result<Route, NotFound> {
        let [b, more @ ..] = tail else {
            return Ok(Route::Branches { scope, slash });
        };
        let branch = BranchRef {
            scope,
            branch: name(b)?,
        };
        let [t, more @ ..] = more else {
            return Ok(Route::Branch { branch, slash });
        };
        let tag = name(t)?;
        let [j, more @ ..] = more else {
            return Ok(Route::Tag { branch, tag, slash });
        };
        if more.is_empty()
            && !slash
            && let Some((stem, enc)) = Encoding::split(j)
        {
            return Ok(Route::JobTar {
                branch,
                tag,
                job: name(stem)?,
                enc,
            });
        }
        let job = name(j)?;
        let [f, more @ ..] = more else {
            return Ok(Route::Job {
                branch,
                tag,
                job,
                slash,
            });
        };
        Route::parse_format(FormatParent::Job { branch, tag, job }, f, more, slash)
    }

    fn parse_products(scope: Scope, tail: &[&str], slash: bool) -> Result<Route, NotFound> {
        if tail.len() < 4 {
            let path = tail.iter().map(|s| name(s)).collect::<Result<_, _>>()?;
            return Ok(Route::Products { scope, path, slash });
        }
        let path = [name(tail[0])?, name(tail[1])?, name(tail[2])?];
        let v = tail[3];
        let more = &tail[4..];
        if more.is_empty()
            && !slash
            && let Some(index) = AptIndex::parse(v)
        {
            return Ok(Route::BranchIndex { scope, path, index });
        }
        if more.is_empty()
            && !slash
            && let Some((stem, enc)) = Encoding::split(v)
        {
            return Ok(Route::VersionTar {
                scope,
                path,
                version: name(stem)?,
                enc,
            });
        }
        let version = name(v)?;
        let [f, more @ ..] = more else {
            return Ok(Route::Version {
                scope,
                path,
                version,
                slash,
            });
        };
        Route::parse_format(
            FormatParent::Version {
                scope,
                path,
                version,
            },
            f,
            more,
            slash,
        )
    }

    fn parse_format(
        parent: FormatParent,
        f: &str,
        more: &[&str],
        slash: bool,
    ) -> Result<Route, NotFound> {
        let (format, part) = match (more, slash) {
            ([], false) => {
                if let Some((stem, enc)) = Encoding::split(f) {
                    (stem, FormatPart::Tar(enc))
                } else if let Some(stem) = f.strip_suffix(".sha256") {
                    (stem, FormatPart::Sha256)
                } else {
                    (f, FormatPart::Bare)
                }
            }
            ([], true) => (f, FormatPart::Dir),
            (segs, _) => {
                let mut rel = segs.join("/");
                if slash {
                    rel.push('/');
                }
                (f, FormatPart::Artifact(rel))
            }
        };
        Ok(Route::Format {
            parent,
            format: name(format)?,
            part,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn main_branch() -> BranchRef {
        BranchRef {
            scope: Scope::Root,
            branch: n("main"),
        }
    }

    #[test]
    fn top_levels_and_user_prefix() {
        assert_eq!(Route::parse("/"), Ok(Route::Home(Scope::Root)));
        assert_eq!(Route::parse("/~Bob"), Ok(Route::UserBare(n("bob"))));
        assert_eq!(
            Route::parse("/%7Ebob/"),
            Ok(Route::Home(Scope::User(n("bob"))))
        );
        assert_eq!(
            Route::parse("/%7ebob/branches"),
            Ok(Route::Branches {
                scope: Scope::User(n("bob")),
                slash: false
            })
        );
        // spec/API.md Q1: no escaping to the root repository through the user prefix.
        assert_eq!(Route::parse("/~../branches/"), Err(NotFound));
        assert_eq!(Route::parse("/~.x/"), Err(NotFound));
        assert_eq!(Route::parse("/nope"), Err(NotFound));
    }

    #[test]
    fn names_are_decoded_and_validated() {
        assert_eq!(
            Route::parse("/branches/MAIN/"),
            Ok(Route::Branch {
                branch: main_branch(),
                slash: true
            })
        );
        assert_eq!(Route::parse("/branches/a%2Fb/"), Err(NotFound));
        assert_eq!(Route::parse("/branches/%2e%2e/"), Err(NotFound));
        assert_eq!(Route::parse("/branches/.hidden/"), Err(NotFound));
        assert_eq!(Route::parse("/branches//"), Err(NotFound));
        assert!(matches!(
            Route::parse("/branches/main/t/j%C3%A9b%20sp/"),
            Ok(Route::Job { job, .. }) if job.as_str() == "j\u{e9}b sp"
        ));
    }

    #[test]
    fn suffix_precedence() {
        assert!(matches!(Route::parse("/branches/main/t/j.tar"),
            Ok(Route::JobTar { job, .. }) if job.as_str() == "j"));
        assert!(matches!(Route::parse("/branches/main/t/j.tar/"),
            Ok(Route::Job { job, slash: true, .. }) if job.as_str() == "j.tar"));
        let fmt = |p: &str| match Route::parse(p) {
            Ok(Route::Format { format, part, .. }) => (format.to_string(), part),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            fmt("/branches/b/t/j/f.tar"),
            ("f".into(), FormatPart::Tar(Encoding::Tar))
        );
        assert_eq!(
            fmt("/branches/b/t/j/f.tar.zst"),
            ("f".into(), FormatPart::Tar(Encoding::TarZst))
        );
        assert_eq!(
            fmt("/branches/b/t/j/f.zip/"),
            ("f.zip".into(), FormatPart::Dir)
        );
        assert!(matches!(Route::parse("/branches/main/t/j.tar.gz"),
            Ok(Route::JobTar { job, enc: Encoding::TarGz, .. }) if job.as_str() == "j"));
        assert!(matches!(Route::parse("/branches/main/t/j.zip/"),
            Ok(Route::Job { job, slash: true, .. }) if job.as_str() == "j.zip"));
        // Not an encoding: a job named so, as before.
        assert!(matches!(Route::parse("/branches/main/t/j.tgz"),
            Ok(Route::Job { job, slash: false, .. }) if job.as_str() == "j.tgz"));
        assert_eq!(
            fmt("/branches/b/t/j/f.sha256"),
            ("f".into(), FormatPart::Sha256)
        );
        assert_eq!(
            fmt("/branches/b/t/j/f.sha256/"),
            ("f.sha256".into(), FormatPart::Dir)
        );
        assert_eq!(fmt("/branches/b/t/j/f"), ("f".into(), FormatPart::Bare));
        assert_eq!(
            fmt("/branches/b/t/j/F/Dir/a+b%20c.txt"),
            ("f".into(), FormatPart::Artifact("Dir/a+b c.txt".into()))
        );
        assert_eq!(
            fmt("/products/p/v/pb/1.0/f/x/"),
            ("f".into(), FormatPart::Artifact("x/".into()))
        );
    }

    #[test]
    fn products_levels() {
        assert!(matches!(Route::parse("/products"),
            Ok(Route::Products { path, slash: false, .. }) if path.is_empty()));
        assert!(matches!(Route::parse("/products/p/v/pb/"),
            Ok(Route::Products { path, slash: true, .. }) if path.len() == 3));
        assert!(matches!(Route::parse("/products/p/v/pb/1.0.tar"),
            Ok(Route::VersionTar { version, .. }) if version.as_str() == "1.0"));
        assert!(matches!(Route::parse("/products/p/v/pb/latest.tar.xz"),
            Ok(Route::VersionTar { version, enc: Encoding::TarXz, .. })
                if version.as_str() == "latest"));
        assert!(matches!(
            Route::parse("/products/p/v/pb/Packages.xz"),
            Ok(Route::BranchIndex {
                index: AptIndex::PackagesXz,
                ..
            })
        ));
        // Index names are spelled exactly; anything else is a version.
        assert!(matches!(Route::parse("/products/p/v/pb/packages"),
            Ok(Route::Version { version, slash: false, .. }) if version.as_str() == "packages"));
        assert!(matches!(Route::parse("/products/p/v/pb/Release/"),
            Ok(Route::Version { version, slash: true, .. }) if version.as_str() == "release"));
        assert!(matches!(Route::parse("/products/p/v/pb/Latest/"),
            Ok(Route::Version { version, slash: true, .. }) if version.as_str() == "latest"));
    }
}

impl FormatParent {
    fn path(&self) -> String {
        match self {
            FormatParent::Job { branch, tag, job } => {
                format!("{}{tag}/{job}", branch.url())
            }
            FormatParent::Version {
                scope,
                path,
                version,
            } => format!(
                "{}/products/{}/{}/{}/{version}",
                scope.url(),
                path[0],
                path[1],
                path[2]
            ),
        }
    }
}

impl Route {
    /// The one path this request is authorized on (spec/API.md Q2, Q48): every name
    /// lower-cased as storage does, `%7E` as `~`, the artifact path untouched, and the slash
    /// folded wherever the route acts on (or redirects to) an entity, so that `DELETE
    /// /branches/x` is checked exactly as `DELETE /branches/x/`, the branch it deletes.
    // One arm per route, side by side so that a new route cannot miss its spelling.
    pub fn canonical_path(&self) -> String {
        match self {
            Route::Home(scope) => format!("{}/", scope.url()),
            Route::UserBare(user) => format!("/~{user}/"),
            Route::Branches { scope, .. } => format!("{}/branches/", scope.url()),
            Route::Branch { branch, .. } => branch.url(),
            Route::Tag { branch, tag, .. } => format!("{}{tag}/", branch.url()),
            Route::JobTar {
                branch,
                tag,
                job,
                enc,
            } => format!("{}{tag}/{job}{}", branch.url(), enc.suffix()),
            Route::Job {
                branch, tag, job, ..
            } => format!("{}{tag}/{job}/", branch.url()),
            Route::Format {
                parent,
                format,
                part,
            } => {
                let base = format!("{}/{format}", parent.path());
                match part {
                    FormatPart::Tar(enc) => format!("{base}{}", enc.suffix()),
                    FormatPart::Sha256 => format!("{base}.sha256"),
                    FormatPart::Bare | FormatPart::Dir => format!("{base}/"),
                    FormatPart::Artifact(rel) => format!("{base}/{rel}"),
                }
            }
            Route::Products { scope, path, .. } => {
                let mut url = format!("{}/products/", scope.url());
                for seg in path {
                    url.push_str(seg.as_str());
                    url.push('/');
                }
                url
            }
            Route::Version {
                scope,
                path,
                version,
                ..
            } => format!(
                "{}/products/{}/{}/{}/{version}/",
                scope.url(),
                path[0],
                path[1],
                path[2]
            ),
            Route::VersionTar {
                scope,
                path,
                version,
                enc,
            } => format!(
                "{}/products/{}/{}/{}/{version}{}",
                scope.url(),
                path[0],
                path[1],
                path[2],
                enc.suffix()
            ),
            Route::BranchIndex { scope, path, index } => format!(
                "{}/products/{}/{}/{}/{}",
                scope.url(),
                path[0],
                path[1],
                path[2],
                index.name()
            ),
        }
    }

    /// What a read of this route discloses besides its own URL: a bundle or checksum list
    /// is the content of its job, version or format, so it needs read access there too,
    /// and a caller who may not read the entity sees the same answer whether it exists or
    /// not.
    pub fn also_reads(&self) -> Option<String> {
        match self {
            Route::JobTar {
                branch, tag, job, ..
            } => Some(format!("{}{tag}/{job}/", branch.url())),
            Route::VersionTar {
                scope,
                path,
                version,
                ..
            } => Some(format!(
                "{}/products/{}/{}/{}/{version}/",
                scope.url(),
                path[0],
                path[1],
                path[2]
            )),
            Route::Format {
                parent,
                format,
                part: FormatPart::Tar(_) | FormatPart::Sha256,
            } => Some(format!("{}/{format}/", parent.path())),
            // The archive lists the branch's versions.
            Route::BranchIndex { scope, path, .. } => Some(format!(
                "{}/products/{}/{}/{}/",
                scope.url(),
                path[0],
                path[1],
                path[2]
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod canonical_path_tests {
    use super::*;

    fn p(raw: &str) -> String {
        Route::parse(raw).unwrap().canonical_path()
    }

    #[test]
    fn names_are_canonical_and_artifacts_untouched() {
        assert_eq!(p("/branches/SECRET/T/J/"), "/branches/secret/t/j/");
        assert_eq!(
            p("/branches/B/T/J/F/Dir/File.TXT"),
            "/branches/b/t/j/f/Dir/File.TXT"
        );
        assert_eq!(p("/branches/B/T/J.tar"), "/branches/b/t/j.tar");
        assert_eq!(p("/branches/B/T/J.tar.GZ"), "/branches/b/t/j.tar.gz/");
        assert_eq!(p("/branches/B/T/J.Tar.gz"), "/branches/b/t/j.tar.gz/");
        assert_eq!(p("/branches/B/T/J.zip"), "/branches/b/t/j.zip");
        assert_eq!(p("/branches/B/T/J/F.tar.xz"), "/branches/b/t/j/f.tar.xz");
        assert_eq!(p("/branches/B/T/J/F.sha256"), "/branches/b/t/j/f.sha256");
        assert_eq!(p("/products/P/V/B/1.0/"), "/products/p/v/b/1.0/");
        assert_eq!(
            p("/products/P/V/B/LATEST.tar"),
            "/products/p/v/b/latest.tar"
        );
        assert_eq!(p("/"), "/");
    }

    #[test]
    fn slash_forms_fold_onto_the_entity() {
        // spec/API.md Q48: the slashless URL acts on the same entity, so it is checked on
        // the same path.
        for (a, b) in [
            ("/branches/vault", "/branches/vault/"),
            ("/branches/v/t", "/branches/v/t/"),
            ("/branches/v/t/j", "/branches/v/t/j/"),
            ("/branches/v/t/j/f", "/branches/v/t/j/f/"),
            ("/products", "/products/"),
            ("/products/p/v", "/products/p/v/"),
            ("/products/p/v/b/1.0", "/products/p/v/b/1.0/"),
            ("/%7EBob/branches", "/~bob/branches/"),
            ("/~Bob", "/~bob/"),
        ] {
            assert_eq!(p(a), p(b), "{a}");
            assert_eq!(p(a), b.to_lowercase().replace("%7ebob", "~bob"), "{a}");
        }
    }

    #[test]
    fn bundles_also_read_their_entity() {
        let also = |raw: &str| Route::parse(raw).unwrap().also_reads();
        assert_eq!(
            also("/branches/B/T/J.tar").as_deref(),
            Some("/branches/b/t/j/")
        );
        assert_eq!(
            also("/branches/b/t/j/F.sha256").as_deref(),
            Some("/branches/b/t/j/f/")
        );
        assert_eq!(
            also("/products/p/v/b/1.0.tar").as_deref(),
            Some("/products/p/v/b/1.0/")
        );
        assert_eq!(
            also("/branches/B/T/J.tar.zst").as_deref(),
            Some("/branches/b/t/j/")
        );
        assert_eq!(
            also("/branches/b/t/j/F.zip").as_deref(),
            Some("/branches/b/t/j/f/")
        );
        assert_eq!(
            also("/products/p/v/b/1.0.tar.gz").as_deref(),
            Some("/products/p/v/b/1.0/")
        );
        assert_eq!(also("/branches/b/t/j/f/a.tar"), None);
        assert_eq!(also("/branches/b/t/j/f/a.zip"), None);
    }
}
