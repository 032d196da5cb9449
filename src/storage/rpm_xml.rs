//! The XML of a dnf repository's metadata (`primary`, `filelists`, `other`), laid out as
//! createrepo_c writes it, from parsed package headers (issue 15). Every text and attribute
//! is escaped, and characters XML 1.0 cannot carry are dropped.

use super::rpm_header::{Dep, Rpm, RpmFile};
use std::fmt::Write as _;
use std::sync::Arc;

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `primary.xml`: each package's identity, description, sizes, location, dependencies and
/// the files createrepo lists there (see [`is_primary`]). `file_time` is the format's time.
pub(crate) fn primary(packages: &[(String, Arc<Rpm>)], file_time: u64) -> String {
    let mut out = format!(
        "{XML_DECL}<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{}\">\n",
        packages.len()
    );
    for (rel, rpm) in packages {
        primary_package(&mut out, rel, rpm, file_time);
    }
    out.push_str("</metadata>\n");
    out
}

fn primary_package(out: &mut String, rel: &str, rpm: &Rpm, file_time: u64) {
    let h = &rpm.header;
    let _ = write!(
        out,
        "<package type=\"rpm\">\n  <name>{}</name>\n  <arch>{}</arch>\n  {}\n  \
         <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum>\n  <summary>{}</summary>\n  \
         <description>{}</description>\n  <packager>{}</packager>\n  <url>{}</url>\n  \
         <time file=\"{file_time}\" build=\"{}\"/>\n  \
         <size package=\"{}\" installed=\"{}\" archive=\"{}\"/>\n  <location href=\"{}\"/>\n",
        esc(&h.name),
        esc(&h.arch),
        version(rpm),
        rpm.sha256,
        esc(&h.summary),
        esc(&h.description),
        esc(&h.packager),
        esc(&h.url),
        h.build_time,
        rpm.size,
        h.installed_size,
        h.archive_size,
        esc(rel),
    );
    let _ = write!(
        out,
        "  <format>\n    <rpm:license>{}</rpm:license>\n    <rpm:vendor>{}</rpm:vendor>\n    \
         <rpm:group>{}</rpm:group>\n    <rpm:buildhost>{}</rpm:buildhost>\n    \
         <rpm:sourcerpm>{}</rpm:sourcerpm>\n    \
         <rpm:header-range start=\"{}\" end=\"{}\"/>\n",
        esc(&h.license),
        esc(&h.vendor),
        esc(&h.group),
        esc(&h.buildhost),
        esc(&h.sourcerpm),
        h.header_start,
        h.header_end,
    );
    for (kind, deps) in &h.deps {
        dep_list(out, kind, deps);
    }
    for f in h.files.iter().filter(|f| is_primary(&f.path)) {
        file(out, "    ", f);
    }
    out.push_str("  </format>\n</package>\n");
}

/// `filelists.xml`: every file of every package.
pub(crate) fn filelists(packages: &[(String, Arc<Rpm>)]) -> String {
    let mut out = format!(
        "{XML_DECL}<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" \
         packages=\"{}\">\n",
        packages.len()
    );
    for (_, rpm) in packages {
        package_open(&mut out, rpm);
        for f in &rpm.header.files {
            file(&mut out, "  ", f);
        }
        out.push_str("</package>\n");
    }
    out.push_str("</filelists>\n");
    out
}

/// `other.xml`: the changelogs, oldest first as createrepo writes them.
pub(crate) fn other(packages: &[(String, Arc<Rpm>)]) -> String {
    let mut out = format!(
        "{XML_DECL}<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" \
         packages=\"{}\">\n",
        packages.len()
    );
    for (_, rpm) in packages {
        package_open(&mut out, rpm);
        for (author, date, text) in rpm.header.changelogs.iter().rev() {
            let _ = writeln!(
                out,
                "  <changelog author=\"{}\" date=\"{date}\">{}</changelog>",
                esc(author),
                esc(text)
            );
        }
        out.push_str("</package>\n");
    }
    out.push_str("</otherdata>\n");
    out
}

fn package_open(out: &mut String, rpm: &Rpm) {
    let h = &rpm.header;
    let _ = write!(
        out,
        "<package pkgid=\"{}\" name=\"{}\" arch=\"{}\">\n  {}\n",
        rpm.sha256,
        esc(&h.name),
        esc(&h.arch),
        version(rpm)
    );
}

fn version(rpm: &Rpm) -> String {
    let h = &rpm.header;
    format!(
        "<version epoch=\"{}\" ver=\"{}\" rel=\"{}\"/>",
        h.epoch,
        esc(&h.version),
        esc(&h.release)
    )
}

fn file(out: &mut String, indent: &str, f: &RpmFile) {
    let typ = if f.dir {
        " type=\"dir\""
    } else if f.ghost {
        " type=\"ghost\""
    } else {
        ""
    };
    let _ = writeln!(out, "{indent}<file{typ}>{}</file>", esc(&f.path));
}

/// The files createrepo puts in `primary.xml` (so that dnf resolves file dependencies
/// without `filelists`): configuration, executables and sendmail.
fn is_primary(path: &str) -> bool {
    path.starts_with("/etc/") || path.contains("bin/") || path == "/usr/lib/sendmail"
}

/// rpm's dependency sense bits.
const SENSE_LESS: u32 = 1 << 1;
const SENSE_GREATER: u32 = 1 << 2;
const SENSE_EQUAL: u32 = 1 << 3;
/// Needed before install or by scriptlets: PREREQ, PRETRANS, POSTTRANS, SCRIPT_PRE/POST.
const SENSE_PRE: u32 = (1 << 6) | (1 << 7) | (1 << 5) | (1 << 9) | (1 << 10);

fn dep_list(out: &mut String, kind: &str, deps: &[Dep]) {
    let mut seen = std::collections::HashSet::new();
    let mut body = String::new();
    for d in deps {
        // rpm's own features are for rpm, not for the resolver (createrepo drops them).
        if kind == "requires" && d.name.starts_with("rpmlib(") {
            continue;
        }
        let pre = kind == "requires" && d.flags & SENSE_PRE != 0;
        if !seen.insert((d.name.as_str(), d.flags & 0xe, d.evr.as_str(), pre)) {
            continue;
        }
        body.push_str(&entry(d, pre));
    }
    if !body.is_empty() {
        let _ = write!(out, "    <rpm:{kind}>\n{body}    </rpm:{kind}>\n");
    }
}

fn entry(d: &Dep, pre: bool) -> String {
    let mut s = format!("      <rpm:entry name=\"{}\"", esc(&d.name));
    let flags = match d.flags & (SENSE_LESS | SENSE_GREATER | SENSE_EQUAL) {
        SENSE_LESS => "LT",
        SENSE_GREATER => "GT",
        SENSE_EQUAL => "EQ",
        f if f == SENSE_LESS | SENSE_EQUAL => "LE",
        f if f == SENSE_GREATER | SENSE_EQUAL => "GE",
        _ => "",
    };
    if !flags.is_empty() && !d.evr.is_empty() {
        let (epoch, rest) = match d.evr.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
            _ => ("0", d.evr.as_str()),
        };
        let _ = write!(s, " flags=\"{flags}\" epoch=\"{}\"", esc(epoch));
        match rest.rsplit_once('-') {
            Some((ver, rel)) => {
                let _ = write!(s, " ver=\"{}\" rel=\"{}\"", esc(ver), esc(rel));
            }
            None => {
                let _ = write!(s, " ver=\"{}\"", esc(rest));
            }
        }
    }
    if pre {
        s.push_str(" pre=\"1\"");
    }
    s.push_str("/>\n");
    s
}

/// `text` escaped for XML text and attributes; control characters XML 1.0 forbids are
/// dropped.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::rpm_header::RpmHeader;

    fn dep(name: &str, flags: u32, evr: &str) -> Dep {
        Dep {
            name: name.into(),
            flags,
            evr: evr.into(),
        }
    }

    #[test]
    fn entries_carry_sense_and_evr() {
        let ge = entry(&dep("a", 12, "1:2.0-3"), false);
        assert_eq!(
            ge,
            "      <rpm:entry name=\"a\" flags=\"GE\" epoch=\"1\" ver=\"2.0\" rel=\"3\"/>\n"
        );
        let eq = entry(&dep("b", 8, "2.0"), true);
        assert!(
            eq.contains(" flags=\"EQ\" epoch=\"0\" ver=\"2.0\" pre=\"1\"/>"),
            "{eq}"
        );
        assert_eq!(
            entry(&dep("c<", 0, ""), false),
            "      <rpm:entry name=\"c&lt;\"/>\n"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("a&b<\"c\">\u{1}\n'"),
            "a&amp;b&lt;&quot;c&quot;&gt;\n&apos;"
        );
    }

    #[test]
    fn primary_lists_executables_and_drops_rpmlib() {
        let header = RpmHeader {
            name: "hello".into(),
            arch: "noarch".into(),
            version: "1.0".into(),
            release: "1".into(),
            deps: vec![
                ("provides", vec![dep("hello", 8, "1.0-1")]),
                (
                    "requires",
                    vec![dep("rpmlib(X)", 1 << 24, "1"), dep("other", 0, "")],
                ),
                ("conflicts", vec![]),
            ],
            files: vec![
                RpmFile {
                    path: "/usr/bin/hello".into(),
                    dir: false,
                    ghost: false,
                },
                RpmFile {
                    path: "/usr/share/doc/hello".into(),
                    dir: true,
                    ghost: false,
                },
            ],
            changelogs: vec![
                ("me <m@x>".into(), 2, "new".into()),
                ("me".into(), 1, "old".into()),
            ],
            ..RpmHeader::default()
        };
        let rpm = Arc::new(Rpm {
            header,
            size: 10,
            sha256: "ab".into(),
        });
        let packages = vec![("sub/hello.rpm".to_owned(), rpm)];
        let p = primary(&packages, 5);
        assert!(p.contains("packages=\"1\""), "{p}");
        assert!(p.contains("<location href=\"sub/hello.rpm\"/>"), "{p}");
        assert!(p.contains("<time file=\"5\" build=\"0\"/>"), "{p}");
        assert!(!p.contains("rpmlib") && !p.contains("conflicts"), "{p}");
        assert!(p.contains("<file>/usr/bin/hello</file>") && !p.contains("/usr/share"));
        let f = filelists(&packages);
        assert!(
            f.contains("  <file type=\"dir\">/usr/share/doc/hello</file>\n"),
            "{f}"
        );
        let o = other(&packages);
        let old = o.find("old").unwrap();
        assert!(old < o.find("new").unwrap(), "{o}");
        assert!(o.contains("author=\"me &lt;m@x&gt;\" date=\"2\""), "{o}");
    }
}
