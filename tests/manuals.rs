//! The roff manuals in man/ are generated from their scdoc sources and committed; this keeps
//! the two from drifting apart. Only the date scdoc stamps in the `.TH` line may differ.
//! Debian's scdoc comes from tests/deps/install.

// The test reads the repository's own files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::Path;
use std::process::{Command, Stdio};

/// The page without its `.TH` line, which carries the build date.
fn body(roff: &str) -> Vec<&str> {
    roff.lines().filter(|l| !l.starts_with(".TH ")).collect()
}

#[test]
fn committed_manuals_match_their_scdoc_sources() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut checked = 0;
    for entry in std::fs::read_dir(&man).expect("man/") {
        let src = entry.expect("entry").path();
        if src.extension().is_none_or(|e| e != "scd") {
            continue;
        }
        let page = src.with_extension("");
        let input = std::fs::File::open(&src).expect("source");
        let out = Command::new("scdoc")
            .stdin(Stdio::from(input))
            .output()
            .unwrap_or_else(|e| panic!("scdoc: {e}: run tests/deps/install, which installs it"));
        assert!(
            out.status.success(),
            "scdoc < {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh = String::from_utf8(out.stdout).expect("roff is UTF-8");
        let committed =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            body(&fresh) == body(&committed),
            "{} is stale: run `make -C man`",
            page.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "man/ should hold five scdoc sources");
}
