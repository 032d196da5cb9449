//! `latest`, `stable` and `oldstable` (spec/API.md §4): one choice for tags and product
//! versions (and container tags).

use crate::model::Alias;
use std::path::{Path, PathBuf};

/// Picks `latest` (newest), `stable` (newest with the flag) or `oldstable` (second newest with
/// it). Candidates arrive in name order; the sort is stable, so equal times keep that order.
pub(crate) fn pick_alias<T>(
    mut candidates: Vec<(f64, T, PathBuf)>,
    alias: Alias,
    is_stable: impl Fn(&Path) -> bool,
) -> Option<T> {
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut stable = candidates.into_iter().filter(|c| match alias {
        Alias::Latest => true,
        _ => is_stable(&c.2),
    });
    let pick = match alias {
        Alias::OldStable => stable.nth(1),
        _ => stable.next(),
    };
    pick.map(|c| c.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(time, name, stable?)`, in name order as listings give them.
    fn pick(items: &[(f64, &'static str, bool)], alias: Alias) -> Option<&'static str> {
        let candidates = items
            .iter()
            .map(|(t, name, stable)| {
                let dir = PathBuf::from(if *stable { "stable" } else { "daily" });
                (*t, *name, dir)
            })
            .collect();
        pick_alias(candidates, alias, |dir| dir == Path::new("stable"))
    }

    #[test]
    fn newest_first_and_ties_keep_name_order() {
        let tags = [
            (1.0, "a", true),
            (3.0, "b", false),
            (2.0, "c", true),
            (3.0, "d", true),
        ];
        assert_eq!(pick(&tags, Alias::Latest), Some("b"));
        assert_eq!(pick(&tags, Alias::Stable), Some("d"));
        assert_eq!(pick(&tags, Alias::OldStable), Some("c"));
    }

    #[test]
    fn too_few_stable_ones_pick_nothing() {
        let tags = [(1.0, "a", false), (2.0, "b", true)];
        assert_eq!(pick(&tags, Alias::OldStable), None);
        assert_eq!(pick(&[], Alias::Latest), None);
    }
}
