//! The tar encoding of `archive.rs`, read back with the `tar` crate: member order, modes,
//! pax records, the sums file, chunking and errors.

use super::*;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::fs;
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
    Member {
        name: name.to_owned(),
        path: root.join(name),
        digest: digest.to_owned(),
    }
}

async fn collect(
    prefix: &str,
    members: Vec<Member>,
    sums_mtime: f64,
    chunk_size: usize,
) -> Vec<io::Result<Bytes>> {
    tar_stream(prefix.to_owned(), members, sums_mtime, chunk_size)
        .collect()
        .await
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
    members.reverse(); // the stream must sort them itself
    let f1 = root.join("fmt/dir/f1.txt");
    let f1_mtime = fs::metadata(&f1).unwrap().mtime();
    let f1_nsec = fs::metadata(&f1).unwrap().mtime_nsec();

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
    let (_, f1_read) = &entries[1];
    assert_eq!(f1_read.mtime, f1_mtime as u64);
    if f1_nsec != 0 {
        let exact = f1_read.pax_mtime.as_deref().unwrap();
        let parsed: f64 = exact.parse().unwrap();
        assert!((parsed - (f1_mtime as f64 + f1_nsec as f64 / 1e9)).abs() < 1e-6);
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
    assert_eq!(sums.mtime, 1_700_000_000);
    assert_eq!(sums.pax_mtime.as_deref(), Some("1700000000.25"));
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

#[tokio::test]
async fn missing_file_ends_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.txt", b"present", 0o644);
    let members = vec![
        member(dir.path(), "a.txt", SHA_A),
        member(dir.path(), "b.txt", SHA_B),
    ];
    let items = collect("p", members, 0.0, 64).await;
    let (last, before) = items.split_last().unwrap();
    assert!(before.iter().all(|i| i.is_ok()));
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("b.txt"), "{err}");
}

#[tokio::test]
async fn directory_member_ends_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    let items = collect("p", vec![member(dir.path(), "d", SHA_A)], 0.0, 4096).await;
    assert!(items.last().unwrap().is_err());
}

#[test]
fn chunks_are_made_one_at_a_time_and_full_but_the_last() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "big", &vec![7u8; 100_000], 0o644);
    let mut cursor = Cursor {
        prefix: "p".to_owned(),
        members: vec![member(dir.path(), "big", SHA_A)],
        sums_mtime: 0.0,
        next: 0,
        open: None,
        ended: false,
        out: Sink::new(4096),
    };
    let mut sizes = Vec::new();
    while let Some(chunk) = cursor.next_chunk().unwrap() {
        // No file data is read beyond the chunk asked for; only header or padding
        // bytes (at most a record and a header) may wait for the next one.
        assert!(
            cursor.out.buf.len() <= (RECORD + 2 * BLOCK) as usize,
            "read ahead"
        );
        sizes.push(chunk.len());
    }
    let total: usize = sizes.iter().sum();
    assert_eq!(total as u64 % RECORD, 0);
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n == 4096),
        "{sizes:?}"
    );
    assert!(cursor.next_chunk().unwrap().is_none());
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
fn mtime_records() {
    assert_eq!(Mtime::from_parts(10, 0).pax, None);
    assert_eq!(
        Mtime::from_parts(10, 500_000_000).pax.as_deref(),
        Some("10.5")
    );
    assert_eq!(
        Mtime::from_parts(10, 1).pax.as_deref(),
        Some("10.000000001")
    );
    assert_eq!(
        Mtime::from_parts(-2, 500_000_000).pax.as_deref(),
        Some("-1.5")
    );
    assert_eq!(Mtime::from_parts(-2, 0).pax.as_deref(), Some("-2"));
    assert_eq!(Mtime::from_parts(-2, 0).secs, 0);
    assert_eq!(Mtime::from_float(12.0).pax, None);
    assert_eq!(Mtime::from_float(12.75).pax.as_deref(), Some("12.75"));
    assert_eq!(Mtime::from_float(12.75).secs, 12);
}

#[test]
fn huge_size_gets_a_pax_record() {
    let size = 9 << 30;
    let mut out = Sink::new(1 << 16);
    write_header(&mut out, "p/huge", 0o644, size, &Mtime::from_parts(1, 0));
    let bytes = out.take_chunk().unwrap();
    assert_eq!(bytes.len(), 3 * 512);
    let records = String::from_utf8_lossy(&bytes[512..1024]);
    assert!(records.contains(&format!(" size={size}\n")), "{records}");
    let header = Header::from_byte_slice(&bytes[1024..]);
    assert_eq!(header.size().unwrap(), size);
}
