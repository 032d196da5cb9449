//! The relative symlink targets of the product tree (spec/LAYOUT.md §4), written and read
//! here only. A job dir and a version dir sit a fixed depth below their scope dir, so the
//! targets are fixed too and survive moving the data root.

use crate::model::{BranchRef, JobRef, Name, Scope, TagRef, VersionRef};
use std::path::{Component, Path};

/// A target's names, without its `..` steps.
fn normal_parts(target: &Path) -> Vec<&str> {
    target
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect()
}

/// `{job}/.product` -> its product version dir.
pub(crate) fn version_target(v: &VersionRef) -> String {
    format!(
        "../../../../products/{}/{}/{}/{}",
        v.product, v.variant, v.product_branch, v.version
    )
}

/// The version a [`version_target`] of `scope` points at.
pub(crate) fn version_of_target(scope: &Scope, target: &Path) -> Option<VersionRef> {
    let parts = normal_parts(target);
    let ["products", p, v, b, ver] = parts.as_slice() else {
        return None;
    };
    Some(VersionRef {
        scope: scope.clone(),
        product: Name::parse(p).ok()?,
        variant: Name::parse(v).ok()?,
        product_branch: Name::parse(b).ok()?,
        version: Name::parse(ver).ok()?,
    })
}

/// `{version}/{format}` -> the format dir of the job that provides it.
pub(crate) fn format_target(j: &JobRef, format: &str) -> String {
    format!(
        "../../../../../branches/{}/{}/{}/{format}",
        j.tag.branch.branch, j.tag.tag, j.job
    )
}

/// The job a [`format_target`] of `scope` points at.
pub(crate) fn job_of_format_target(scope: &Scope, target: &Path) -> Option<JobRef> {
    let parts = normal_parts(target);
    let [.., "branches", b, t, j, _f] = parts.as_slice() else {
        return None;
    };
    Some(JobRef {
        tag: TagRef {
            branch: BranchRef {
                scope: scope.clone(),
                branch: Name::parse(b).ok()?,
            },
            tag: Name::parse(t).ok()?,
        },
        job: Name::parse(j).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_target_reads_back_as_its_job() {
        let n = |s: &str| Name::parse(s).expect("a name");
        let j = JobRef {
            tag: TagRef {
                branch: BranchRef {
                    scope: Scope::User(n("bob")),
                    branch: n("main"),
                },
                tag: n("t1"),
            },
            job: n("j1"),
        };
        let target = format_target(&j, "iso");
        assert_eq!(target, "../../../../../branches/main/t1/j1/iso");
        assert_eq!(
            job_of_format_target(&j.tag.branch.scope, Path::new(&target)),
            Some(j)
        );
        assert_eq!(
            job_of_format_target(&Scope::Root, Path::new("../x/iso")),
            None
        );
    }
}
