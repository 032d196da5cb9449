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
