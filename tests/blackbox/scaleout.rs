//! Two arbor hosts on one GlusterFS volume behind nginx (issue 19): `tests/scaleout/run`,
//! with this build's binary. The script needs root, network namespaces and FUSE; where it
//! cannot have them it exits 77 and this test says so loudly and passes.

use std::process::Command;

#[test]
fn two_hosts_on_one_gluster_volume_lose_nothing() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scaleout/run");
    let out = Command::new("timeout")
        .args(["900", script, "--arbor-bin", env!("CARGO_BIN_EXE_arbor")])
        .output()
        .expect("tests/scaleout/run starts");
    let log = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(77) => eprintln!("SKIPPED two_hosts_on_one_gluster_volume_lose_nothing: {log}"),
        other => panic!("tests/scaleout/run ended with {other:?}:\n{log}"),
    }
}
