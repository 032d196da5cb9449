//! `latest`, `stable` and `oldstable` (spec/API.md §4): one choice for tags and product
//! versions (and container tags).
//!
//! Tags and versions are ordered by the age of their `.stamp`, which is created once with
//! its directory and never touched again (spec/LAYOUT.md §3.3). So the order of a branch's
//! tags (or a product branch's versions) only changes when an entry comes or goes, which
//! changes the directory's stamp: the order is kept in a [`StampCache`] by directory and a
//! repeat costs one `stat` for `latest`. Entries without a `.stamp` yet are stamped by
//! their own directory (the `.stamp` appearing changes it). Whether a tag is stable is read
//! from the tree at each use, newest first, until the pick is found.

use super::layout::Scan;
use super::stamp_cache::{KEPT_STATS, StampCache, Stamps, Weigh, now_ns};
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{Alias, Name};
use std::path::{Path, PathBuf};

/// The entries of a directory, newest `.stamp` first; equal times keep name order.
pub(crate) struct AliasOrder(Vec<Name>);

impl Weigh for AliasOrder {
    fn weight(&self) -> usize {
        self.0.iter().map(|n| n.as_str().len() + 48).sum()
    }
}

/// What the alias orders of the tree may hold together: about 60 bytes a tag, so the
/// order of one branch of up to about 250,000 tags is kept.
pub(crate) const ALIAS_BUDGET: usize = 32 << 20;

pub(crate) type AliasCache = StampCache<AliasOrder>;

/// Reads the order of the entries of `dir` and the stamps it depends on.
fn read_order(dir: &Path) -> Result<(AliasOrder, Stamps), StoreError> {
    let read_ns = now_ns();
    let scan = Scan::open(dir).map_err(not_found_if_missing)?;
    let mut stamps = Stamps::new(read_ns, scan.stamp);
    let mut timed: Vec<(f64, Name)> = Vec::with_capacity(scan.entities.len());
    for name in &scan.entities {
        let time = scan.mtime_at(&format!("{name}/.stamp"));
        if time.is_none() {
            stamps.add(name.clone(), scan.stamp_at(name.as_str()));
        }
        timed.push((time.unwrap_or(0.0), name.clone()));
    }
    Ok((order_of(timed), stamps))
}

/// Newest first. Names arrive sorted; the sort is stable, so equal times keep that order.
fn order_of(mut timed: Vec<(f64, Name)>) -> AliasOrder {
    timed.sort_by(|a, b| b.0.total_cmp(&a.0));
    AliasOrder(timed.into_iter().map(|(_, n)| n).collect())
}

/// Picks `latest` (newest), `stable` (newest with the flag) or `oldstable` (second newest with
/// it) among candidates read by the caller (container tags, `registry/containers.rs`).
/// Candidates arrive in name order; the sort is stable, so equal times keep that order.
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

/// The pick of `alias` in `order`, among the entries `allowed`; `is_stable` is asked
/// newest first, only as far as needed.
fn pick_in(
    order: &AliasOrder,
    alias: Alias,
    allowed: impl Fn(&Name) -> bool,
    is_stable: impl Fn(&Name) -> bool,
) -> Option<Name> {
    let mut candidates = order
        .0
        .iter()
        .filter(|n| allowed(n))
        .filter(|n| match alias {
            Alias::Latest => true,
            _ => is_stable(n),
        });
    match alias {
        Alias::OldStable => candidates.nth(1),
        _ => candidates.next(),
    }
    .cloned()
}

impl Repo {
    /// Picks `alias` among the entries of `dir` (a branch's tags, a product branch's
    /// versions) that are `allowed`: `latest` (newest), `stable` (newest for which
    /// `is_stable`) or `oldstable` (the second newest). `NotFound` when there is none.
    pub(crate) fn pick_alias(
        &self,
        dir: &Path,
        alias: Alias,
        allowed: impl Fn(&Name) -> bool,
        is_stable: impl Fn(&Name) -> bool,
    ) -> Result<Name, StoreError> {
        let order = self.alias_orders.get_or_read(dir, || read_order(dir))?;
        pick_in(&order, alias, allowed, is_stable).ok_or(StoreError::NotFound)
    }

    /// [`Repo::pick_alias`] from a kept order only, without reading the tree beyond a few
    /// `stat`s; `None` when no order is kept (the caller then reads it on the blocking
    /// pool). `Some(Err(NotFound))` when the kept order has no pick.
    ///
    /// Also `None` when the pick needs more than [`KEPT_STATS`] tests (a branch where no
    /// recent tag is stable, or whose recent tags the caller may not read): on the async
    /// runtime a request must not hold a worker for a scan of the branch.
    pub(crate) fn pick_alias_kept(
        &self,
        dir: &Path,
        alias: Alias,
        allowed: impl Fn(&Name) -> bool,
        is_stable: impl Fn(&Name) -> bool,
    ) -> Option<Result<Name, StoreError>> {
        let order = self.alias_orders.hit(dir)?;
        let tests = std::cell::Cell::new(0usize);
        let within = || {
            tests.set(tests.get() + 1);
            tests.get() <= KEPT_STATS
        };
        // Past the budget each test says no without a stat or an ACL check; the pick is
        // then dropped.
        let pick = pick_in(
            &order,
            alias,
            |n| within() && allowed(n),
            |n| within() && is_stable(n),
        );
        if tests.get() > KEPT_STATS {
            return None;
        }
        Some(pick.ok_or(StoreError::NotFound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(time, name, stable?)`, in name order as listings give them.
    fn pick(items: &[(f64, &'static str, bool)], alias: Alias) -> Option<String> {
        let name = |s: &str| Name::parse(s).expect("name");
        let order = order_of(items.iter().map(|(t, n, _)| (*t, name(n))).collect());
        let stable = |n: &Name| items.iter().any(|(_, m, s)| *s && n.as_str() == *m);
        let kept = pick_in(&order, alias, |_| true, stable).map(|n| n.to_string());
        // The candidates' own pick (container tags) agrees.
        let candidates = items
            .iter()
            .map(|(t, n, s)| (*t, n.to_string(), PathBuf::from(if *s { "s" } else { "d" })))
            .collect();
        let picked = pick_alias(candidates, alias, |d| d == Path::new("s"));
        assert_eq!(kept, picked);
        kept
    }

    #[test]
    fn newest_first_and_ties_keep_name_order() {
        let tags = [
            (1.0, "a", true),
            (3.0, "b", false),
            (2.0, "c", true),
            (3.0, "d", true),
        ];
        assert_eq!(pick(&tags, Alias::Latest).as_deref(), Some("b"));
        assert_eq!(pick(&tags, Alias::Stable).as_deref(), Some("d"));
        assert_eq!(pick(&tags, Alias::OldStable).as_deref(), Some("c"));
    }

    #[test]
    fn a_kept_pick_that_needs_a_long_scan_is_left_to_the_blocking_pool() {
        use crate::storage::fixture::TestRepo;
        let repo = TestRepo::new();
        let dir = repo.root.join("branches");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let names: Vec<Name> = (0..100)
            .rev()
            .map(|i| Name::parse(&format!("t{i:03}")).expect("name"))
            .collect();
        let later = now_ns() + 10_000_000_000;
        let order = || {
            let stamps = Stamps::new(later, super::super::stamp_cache::Stamp::of(&dir));
            Ok::<_, StoreError>((AliasOrder(names.clone()), stamps))
        };
        repo.alias_orders.get_or_read(&dir, order).expect("kept");
        let is = |tag: &'static str| move |n: &Name| n.as_str() == tag;
        let kept = |alias, allowed: &dyn Fn(&Name) -> bool, stable: &dyn Fn(&Name) -> bool| {
            repo.pick_alias_kept(&dir, alias, allowed, stable)
                .map(|p| p.map(|n| n.to_string()).ok())
        };
        let all = |_: &Name| true;
        assert_eq!(
            kept(Alias::Latest, &all, &is("none")),
            Some(Some("t099".into()))
        );
        assert_eq!(
            kept(Alias::Stable, &all, &is("t090")),
            Some(Some("t090".into()))
        );
        // The stable tag, or the one tag the caller may read, is past the budget.
        assert_eq!(kept(Alias::Stable, &all, &is("t000")), None);
        assert_eq!(kept(Alias::Latest, &is("t000"), &is("none")), None);
        // The blocking pool's pick goes all the way.
        let pool = repo.pick_alias(&dir, Alias::Stable, all, is("t000"));
        assert_eq!(pool.expect("picked").as_str(), "t000");
    }

    #[test]
    fn too_few_stable_ones_pick_nothing() {
        let tags = [(1.0, "a", false), (2.0, "b", true)];
        assert_eq!(pick(&tags, Alias::OldStable), None);
        assert_eq!(pick(&[], Alias::Latest), None);
    }
}
