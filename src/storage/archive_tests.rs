//! The tar encoding of `archive.rs`, read back with the `tar` crate: member order, modes,
//! pax records, the sums file, chunking and errors.

use super::*;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const SHA_D: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

fn write_file(root: &Path, name: &str, data: &[u8], mode: u32) -> PathBuf {
    let path = root.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn member(root: &Path, name: &str, digest: &str) -> Member {
    Member::stat(name.to_owned(), root.join(name), digest.to_owned()).unwrap()
}

fn plan(prefix: &str, members: Vec<Member>, sums_mtime: f64) -> TarPlan {
    TarPlan::new(prefix.to_owned(), members, sums_mtime)
}

async fn collect(
    prefix: &str,
    members: Vec<Member>,
    sums_mtime: f64,
    chunk_size: usize,
) -> Vec<io::Result<Bytes>> {
    plan(prefix, members, sums_mtime)
        .tar_stream(None, chunk_size)
        .collect()
        .await
}

async fn range_of(plan: TarPlan, start: u64, end: u64, chunk_size: usize) -> Vec<u8> {
    let range = ByteRange { start, end };
    concat(plan.tar_stream(Some(range), chunk_size).collect().await)
}

fn concat(items: Vec<io::Result<Bytes>>) -> Vec<u8> {
    let mut all = Vec::new();
    for item in items {
        all.extend_from_slice(&item.unwrap());
    }
    all
}

struct Got {
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
    uname: Vec<u8>,
    data: Vec<u8>,
    pax_mtime: Option<String>,
}

fn read_back(tar_bytes: &[u8]) -> Vec<(String, Got)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().entry_type(), EntryType::Regular);
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let pax_mtime = entry.pax_extensions().unwrap().and_then(|exts| {
            exts.map(|e| e.unwrap())
                .find(|e| e.key() == Ok("mtime"))
                .map(|e| e.value().unwrap().to_owned())
        });
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(entry.size(), data.len() as u64);
        out.push((
            name,
            Got {
                mode: h.mode().unwrap(),
                mtime: h.mtime().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                uname: h.username_bytes().unwrap_or_default().to_vec(),
                data,
                pax_mtime,
            },
        ));
    }
    out
}

#[tokio::test]
async fn streams_sorted_members_and_sums() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = format!("fmt/{}", "l".repeat(146)); // 150 bytes
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut files = BTreeMap::new();
    files.insert(
        "fmt/dir/f1.txt".to_owned(),
        (b"one\n".to_vec(), 0o644, SHA_A),
    );
    files.insert("fmt/b.bin".to_owned(), (big, 0o755, SHA_B));
    files.insert(long.clone(), (b"long name".to_vec(), 0o600, SHA_C));
    files.insert(
        "fmt/éte ünï.txt".to_owned(),
        (b"accents".to_vec(), 0o640, SHA_D),
    );
    files.insert("fmt/empty".to_owned(), (Vec::new(), 0o644, SHA_A));
    files.insert(
        "fmt/md5.txt".to_owned(),
        (b"md5".to_vec(), 0o644, "md5:0123"),
    );
    let mut members = Vec::new();
    for (name, (data, mode, digest)) in &files {
        write_file(root, name, data, *mode);
        members.push(member(root, name, digest));
    }
    members.reverse(); // the plan must sort them itself

    // 1000 is not a multiple of the block size, so chunks split headers and data.
    let items = collect("job-tag", members, 1_700_000_000.25, 1000).await;
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().is_ok_and(|c| c.len() <= 1000))
    );
    let all = concat(items);
    assert_eq!(all.len() % 10240, 0);

    let entries = read_back(&all);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected: Vec<String> = files.keys().map(|k| format!("job-tag/{k}")).collect();
    expected.push("job-tag/SHA256SUMS.txt".to_owned());
    assert_eq!(names, expected);
    assert!(names.contains(&format!("job-tag/{long}").as_str()));

    for ((name, got), (key, (data, mode, _))) in entries.iter().zip(&files) {
        assert_eq!(name, &format!("job-tag/{key}"));
        assert_eq!(&got.data, data, "{name}");
        assert_eq!(got.mode, *mode, "{name}");
        assert_eq!((got.uid, got.gid), (0, 0));
        assert!(got.uname.is_empty());
    }
    // Every member carries the entity's timestamp in whole seconds, never its file's.
    for (name, got) in &entries {
        assert_eq!(
            (got.mtime, got.pax_mtime.as_deref()),
            (1_700_000_000, None),
            "{name}"
        );
    }

    let (_, sums) = entries.last().unwrap();
    let hex = |d: &str| d.strip_prefix("sha256:").unwrap().to_owned();
    let want = format!(
        "{b}  fmt/b.bin\n{a}  fmt/dir/f1.txt\n{a}  fmt/empty\n{c}  {long}\n{d}  fmt/éte ünï.txt\n",
        a = hex(SHA_A),
        b = hex(SHA_B),
        c = hex(SHA_C),
        d = hex(SHA_D),
    );
    assert_eq!(String::from_utf8(sums.data.clone()).unwrap(), want);
    assert_eq!(sums.mode, 0o644);
}

#[tokio::test]
async fn no_sha256_digest_means_no_sums_file() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f.txt", b"x", 0o644);
    let members = vec![member(dir.path(), "f.txt", "sha512:00")];
    let all = concat(collect("p", members, 0.0, 4096).await);
    let entries = read_back(&all);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "p/f.txt");
}

#[tokio::test]
async fn empty_archive_is_one_zero_record() {
    let all = concat(collect("p", Vec::new(), 0.0, 4096).await);
    assert_eq!(all, vec![0u8; 10240]);
}

#[test]
fn missing_or_directory_members_fail_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    let missing = Member::stat("b.txt".into(), dir.path().join("b.txt"), SHA_B.into());
    let err = missing.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("b.txt"), "{err}");
    assert!(Member::stat("d".into(), dir.path().join("d"), SHA_A.into()).is_err());
}

#[tokio::test]
async fn a_member_gone_or_replaced_after_planning_ends_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.txt", b"present", 0o644);
    write_file(dir.path(), "b.txt", b"replaced", 0o644);
    write_file(dir.path(), "c.txt", b"removed", 0o644);
    let members = vec![
        member(dir.path(), "a.txt", SHA_A),
        member(dir.path(), "b.txt", SHA_B),
        member(dir.path(), "c.txt", SHA_C),
    ];
    // Same size, other file: what an overwrite of an unlocked job does.
    let other = write_file(dir.path(), "other", b"REPLACED", 0o644);
    fs::rename(other, dir.path().join("b.txt")).unwrap();
    fs::remove_file(dir.path().join("c.txt")).unwrap();
    let items = collect("p", members, 0.0, 64).await;
    let (last, before) = items.split_last().unwrap();
    assert!(before.iter().all(|i| i.is_ok()));
    let err = last.as_ref().unwrap_err();
    assert!(err.to_string().contains("b.txt"), "{err}");
}

#[test]
fn chunks_are_made_one_at_a_time_and_full_but_the_last() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "big", &vec![7u8; 100_000], 0o644);
    let plan = plan("p", vec![member(dir.path(), "big", SHA_A)], 0.0);
    let layout = plan.tar_layout();
    let mut cursor = Cursor {
        end: layout.len,
        plan,
        layout,
        pos: 0,
        open: None,
        sums: None,
        out: Sink::new(4096),
    };
    let mut sizes = Vec::new();
    while let Some(chunk) = cursor.read_chunk().unwrap() {
        // Nothing is made beyond the chunk asked for.
        assert!(cursor.out.buf.is_empty(), "read ahead");
        sizes.push(chunk.len());
    }
    let total: usize = sizes.iter().sum();
    assert_eq!(total as u64 % RECORD, 0);
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n == 4096),
        "{sizes:?}"
    );
    assert!(cursor.read_chunk().unwrap().is_none());
}

/// Members whose headers, data and padding fall across chunk and block boundaries.
fn varied(root: &Path) -> Vec<Member> {
    let long = format!("fmt/{}", "é".repeat(80));
    let files: [(&str, usize); 5] = [
        ("fmt/a", 0),
        ("fmt/b", 1),
        ("fmt/c", 511),
        ("fmt/d", 513),
        (&long, 3000),
    ];
    files
        .iter()
        .map(|(name, len)| {
            let data: Vec<u8> = (0..*len).map(|i| (i % 253) as u8).collect();
            write_file(root, name, &data, 0o644);
            member(root, name, SHA_A)
        })
        .collect()
}

#[tokio::test]
async fn the_layout_length_is_the_streamed_length() {
    let dir = tempfile::tempdir().unwrap();
    let members = varied(dir.path());
    for n in 0..=members.len() {
        let p = plan("prefix", members[..n].to_vec(), 12.5);
        let len = p.tar_layout().len;
        let all = concat(p.tar_stream(None, 700).collect().await);
        assert_eq!(all.len() as u64, len, "{n} members");
    }
    let no_sums = vec![member(dir.path(), "fmt/b", "md5:00")];
    let p = plan("prefix", no_sums, 1.0);
    let len = p.tar_layout().len;
    assert_eq!(
        concat(p.tar_stream(None, 700).collect().await).len() as u64,
        len
    );
}

#[tokio::test]
async fn any_range_is_the_same_bytes_as_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let members = varied(dir.path());
    let p = plan("prefix", members, 12.5);
    let all = concat(p.clone().tar_stream(None, 4096).collect().await);
    let len = all.len() as u64;
    let cuts = [
        0, 1, 511, 512, 513, 1023, 1024, 1536, 2047, 2048, 4000, 5000, 6000,
    ];
    for &start in cuts.iter().filter(|c| **c < len) {
        for end in [start, start + 1, start + 700, len - 1] {
            let end = end.min(len - 1);
            let got = range_of(p.clone(), start, end, 333).await;
            assert_eq!(got, &all[start as usize..=end as usize], "{start}-{end}");
        }
    }
}

#[tokio::test]
async fn bytes_and_validator_ignore_the_files_own_times() {
    let dir = tempfile::tempdir().unwrap();
    let members = varied(dir.path());
    let p = plan("prefix", members.clone(), 12.5);
    let before = concat(p.clone().tar_stream(None, 4096).collect().await);
    // What a dedup upload or a digest HEAD does to the shared blob.
    for m in &members {
        let f = fs::File::options().write(true).open(&m.path).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    let again = plan("prefix", members.clone(), 12.5);
    assert_eq!(again.etag("tar"), p.etag("tar"));
    assert_eq!(concat(again.tar_stream(None, 4096).collect().await), before);
    // What the bytes do depend on changes the validator.
    let tag = p.etag("tar");
    assert_ne!(plan("prefix", members.clone(), 13.0).etag("tar"), tag);
    assert_ne!(plan("other", members.clone(), 12.5).etag("tar"), tag);
    assert_ne!(p.etag("zip"), tag);
    let mut changed = members.clone();
    changed[1].mode = 0o600;
    assert_ne!(plan("prefix", changed, 12.5).etag("tar"), tag);
    let mut changed = members;
    changed[0].digest = SHA_B.into();
    assert_ne!(plan("prefix", changed, 12.5).etag("tar"), tag);
}

#[test]
fn pax_record_length_counts_itself() {
    for value in ["", "x", &"y".repeat(90), &"z".repeat(995)] {
        let mut rec = Vec::new();
        pax_record(&mut rec, "path", value);
        let text = String::from_utf8(rec).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), text.len());
    }
}

#[test]
fn huge_size_gets_a_pax_record() {
    let size = 9 << 30;
    let bytes = header_bytes("p/huge", 0o644, size, 1);
    assert_eq!(bytes.len(), 3 * 512);
    assert_eq!(header_len("p/huge", size), 3 * 512);
    let records = String::from_utf8_lossy(&bytes[512..1024]);
    assert!(records.contains(&format!(" size={size}\n")), "{records}");
    let header = Header::from_byte_slice(&bytes[1024..]);
    assert_eq!(header.size().unwrap(), size);
}
