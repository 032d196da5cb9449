//! Running per-entity filesystem work on a few threads when a listing is long.

use super::StoreError;

/// Maps `f` over `items` on a few threads when there are many: listing a branch of
/// thousands of tags is dominated by per-tag syscalls, which run in parallel fine.
pub(super) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    const SERIAL_BELOW: usize = 128;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < SERIAL_BELOW {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let parts: Vec<Result<Vec<R>, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(|| chunk.iter().map(&f).collect::<Result<Vec<R>, _>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Io(std::io::Error::other(
                        "listing thread panicked",
                    )))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_keep_their_order_and_errors() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = parallel_map(&items, |n| Ok(n * 2)).expect("no error");
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        let failed = parallel_map(&items, |n| match n {
            700 => Err(StoreError::NotFound),
            n => Ok(*n),
        });
        assert!(matches!(failed, Err(StoreError::NotFound)));
    }
}
