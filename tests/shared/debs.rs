//! Small `.deb` packages built with the real `dpkg-deb`, for the APT repository tests of
//! both tiers.

use std::path::Path;
use std::process::Command;

/// Builds `{name}_{version}_all.deb` in `dir` with `dpkg-deb --build`; returns its bytes.
pub fn build_deb(dir: &Path, name: &str, version: &str) -> Vec<u8> {
    let tree = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/doc").join(name)).unwrap();
    std::fs::write(
        tree.join("usr/share/doc").join(name).join("README"),
        format!("{name} {version}\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: Arbor Tests <tests@example.org>\nDescription: test package\n \
             Built by the arbor test suite.\n"
        ),
    )
    .unwrap();
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&tree)
        .arg(&deb)
        .output()
        .expect("dpkg-deb runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&deb).unwrap()
}
