//! Small noarch `.rpm` packages built with the real `rpmbuild` (and signed with the real
//! `rpmsign`), for the dnf repository tests of both tiers.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `{name}-{version}-1.noarch.rpm` in `dir` with `rpmbuild -bb`: an executable
/// `/usr/bin/{name}`, a directory with a README under `/usr/share/{name}`, a changelog, and
/// `Requires: {requires}` when given. Returns its path.
pub fn build_rpm(dir: &Path, name: &str, version: &str, requires: Option<&str>) -> PathBuf {
    let requires = requires.map_or(String::new(), |r| format!("Requires: {r}\n"));
    let spec = format!(
        "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test <package> & co\n\
         License: MIT\nBuildArch: noarch\n{requires}\n\
         %description\nBuilt by the arbor test suite.\n\n\
         %install\nmkdir -p %{{buildroot}}/usr/bin %{{buildroot}}/usr/share/{name}\n\
         echo 'echo {name}' > %{{buildroot}}/usr/bin/{name}\n\
         echo {version} > %{{buildroot}}/usr/share/{name}/README\n\n\
         %files\n%attr(0755,root,root) /usr/bin/{name}\n/usr/share/{name}\n\n\
         %changelog\n* Mon Jan 01 2024 Arbor Tests <tests@example.org> - {version}-1\n\
         - first & only\n"
    );
    rpmbuild(dir, &format!("{name}-{version}"), &spec)
}

/// Builds the one noarch package of `spec` with `rpmbuild -bb` under `dir/{stem}/`; returns
/// its path.
pub fn rpmbuild(dir: &Path, stem: &str, spec: &str) -> PathBuf {
    run_rpmbuild(dir, stem, spec, "-bb", "RPMS/noarch")
}

/// Builds the source package of `spec` with `rpmbuild -bs` under `dir/{stem}/`; returns
/// its path.
pub fn rpmbuild_source(dir: &Path, stem: &str, spec: &str) -> PathBuf {
    run_rpmbuild(dir, stem, spec, "-bs", "SRPMS")
}

fn run_rpmbuild(dir: &Path, stem: &str, spec: &str, mode: &str, out_dir: &str) -> PathBuf {
    let top = dir.join(stem);
    std::fs::create_dir_all(&top).unwrap();
    let spec_path = top.join(format!("{stem}.spec"));
    std::fs::write(&spec_path, spec).unwrap();
    let out = Command::new("rpmbuild")
        .arg(mode)
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg(&spec_path)
        .output()
        .expect("rpmbuild runs (tests/deps/install installs rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<PathBuf> = std::fs::read_dir(top.join(out_dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(built.len(), 1, "{built:?}");
    built.into_iter().next().unwrap()
}

/// Signs `rpms` in place with the one secret key of the gpg home `gnupg`, as
/// `rpmsign --addsign` does.
pub fn sign_rpms(gnupg: &Path, rpms: &[&Path]) {
    let gpg = which("gpg");
    let out = Command::new("rpmsign")
        .env("GNUPGHOME", gnupg)
        .args(["--define", &format!("__gpg {}", gpg.display())])
        .args(["--define", &format!("_gpg_path {}", gnupg.display())])
        .args(["--define", "_gpg_name arbor test"])
        .arg("--addsign")
        .args(rpms)
        .output()
        .expect("rpmsign runs (tests/deps/install installs rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cmd` as found on PATH (rpmsign runs gpg by the absolute path it was built with, which
/// Debian's rpm sets to /usr/bin/gpg2).
fn which(cmd: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{cmd} not on PATH"))
}
