//! The XML of a dnf repository's metadata (`primary`, `filelists`, `other`), laid out as
//! createrepo_c writes it, from parsed package headers (issue 15). Every text and attribute
//! is escaped, and characters XML 1.0 cannot carry are dropped.

use super::rpm_header::{Dep, Rpm, RpmFile, RpmHeader};
use std::collections::HashSet;
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
        text(&h.name),
        text(&h.arch),
        version(rpm),
        rpm.sha256,
        text(&h.summary),
        text(&h.description),
        text(&h.packager),
        text(&h.url),
        h.build_time,
        rpm.size,
        h.installed_size,
        h.archive_size,
        attr(rel),
    );
    let _ = write!(
        out,
        "  <format>\n    <rpm:license>{}</rpm:license>\n    <rpm:vendor>{}</rpm:vendor>\n    \
         <rpm:group>{}</rpm:group>\n    <rpm:buildhost>{}</rpm:buildhost>\n    \
         <rpm:sourcerpm>{}</rpm:sourcerpm>\n    \
         <rpm:header-range start=\"{}\" end=\"{}\"/>\n",
        text(&h.license),
        text(&h.vendor),
        text(&h.group),
        text(&h.buildhost),
        text(&h.sourcerpm),
        h.header_start,
        h.header_end,
    );
    let own = Own::of(h);
    for (kind, deps) in &h.deps {
        dep_list(out, &own, kind, deps);
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
        for (author, date, change) in rpm.header.changelogs.iter().rev() {
            let _ = writeln!(
                out,
                "  <changelog author=\"{}\" date=\"{date}\">{}</changelog>",
                attr(author),
                text(change)
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
        attr(&h.name),
        attr(&h.arch),
        version(rpm)
    );
}

fn version(rpm: &Rpm) -> String {
    let h = &rpm.header;
    format!(
        "<version epoch=\"{}\" ver=\"{}\" rel=\"{}\"/>",
        h.epoch,
        attr(&h.version),
        attr(&h.release)
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
    let _ = writeln!(out, "{indent}<file{typ}>{}</file>", text(&f.path));
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
const SENSE_MASK: u32 = SENSE_LESS | SENSE_GREATER | SENSE_EQUAL;
/// Needed before install or by scriptlets: PREREQ, PRETRANS, POSTTRANS, SCRIPT_PRE/POST.
const SENSE_PRE: u32 = (1 << 6) | (1 << 7) | (1 << 5) | (1 << 9) | (1 << 10);

/// What a package satisfies itself, looked up once per package (a hostile one lists
/// hundreds of thousands of requires and provides): its files listed in primary and its
/// provides, by name, sense and version.
struct Own<'a> {
    files: HashSet<&'a str>,
    provides: HashSet<(&'a str, u32, &'a str)>,
}

impl<'a> Own<'a> {
    fn of(h: &'a RpmHeader) -> Own<'a> {
        let files = h
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| is_primary(p))
            .collect();
        let provides = h
            .deps
            .iter()
            .filter(|(kind, _)| *kind == "provides")
            .flat_map(|(_, deps)| deps)
            .map(|p| (p.name.as_str(), p.flags & SENSE_MASK, p.evr.as_str()))
            .collect();
        Own { files, provides }
    }

    /// The requirements createrepo leaves out: rpm's own features (`rpmlib(...)`, for rpm,
    /// not the resolver), and what the package satisfies itself, one of its files listed in
    /// primary or one of its provides exactly.
    fn needs_no_listing(&self, d: &Dep) -> bool {
        d.name.starts_with("rpmlib(")
            || (d.name.starts_with('/') && self.files.contains(d.name.as_str()))
            || self
                .provides
                .contains(&(d.name.as_str(), d.flags & SENSE_MASK, d.evr.as_str()))
    }
}

fn dep_list(out: &mut String, own: &Own, kind: &str, deps: &[Dep]) {
    let mut seen = HashSet::new();
    let mut body = String::new();
    for d in deps {
        let requires = kind == "requires";
        if requires && own.needs_no_listing(d) {
            continue;
        }
        let pre = requires && d.flags & SENSE_PRE != 0;
        if !seen.insert((d.name.as_str(), d.flags & SENSE_MASK, d.evr.as_str(), pre)) {
            continue;
        }
        body.push_str(&entry(d, pre));
    }
    if !body.is_empty() {
        let _ = write!(out, "    <rpm:{kind}>\n{body}    </rpm:{kind}>\n");
    }
}

fn entry(d: &Dep, pre: bool) -> String {
    let mut s = format!("      <rpm:entry name=\"{}\"", attr(&d.name));
    let flags = match d.flags & SENSE_MASK {
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
        let _ = write!(s, " flags=\"{flags}\" epoch=\"{}\"", attr(epoch));
        match rest.rsplit_once('-') {
            Some((ver, rel)) => {
                let _ = write!(s, " ver=\"{}\" rel=\"{}\"", attr(ver), attr(rel));
            }
            None => {
                let _ = write!(s, " ver=\"{}\"", attr(rest));
            }
        }
    }
    if pre {
        s.push_str(" pre=\"1\"");
    }
    s.push_str("/>\n");
    s
}

/// Whether the package's path (`rel`), identity, dependencies and files are free of control
/// characters: XML 1.0 cannot carry most of them, and dropping them would list other names
/// than the package's. A package that is not is skipped (free text merely loses them).
pub(crate) fn names_are_plain(rel: &str, h: &RpmHeader) -> bool {
    let plain = |s: &str| !s.chars().any(char::is_control);
    [rel, &h.name, &h.arch, &h.version, &h.release]
        .iter()
        .all(|s| plain(s))
        && h.deps
            .iter()
            .flat_map(|(_, deps)| deps)
            .all(|d| plain(&d.name) && plain(&d.evr))
        && h.files.iter().all(|f| plain(&f.path))
}

/// `s` escaped for an XML attribute value, as libxml2 (and so createrepo_c) writes it.
pub(crate) fn attr(s: &str) -> String {
    escape(s, true)
}

/// `s` escaped for XML text content, as libxml2 writes it.
pub(crate) fn text(s: &str) -> String {
    escape(s, false)
}

/// Markup characters as entities (quotes and white space other than a space only in
/// attributes, where a parser would normalise them); control characters XML 1.0 forbids
/// are dropped.
fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if in_attr => out.push_str("&quot;"),
            '\n' if in_attr => out.push_str("&#10;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn many_requires_and_provides_take_linear_time() {
        let n = 100_000;
        let deps = |prefix: &str| {
            (0..n)
                .map(|i| dep(&format!("{prefix}{i}"), 0, ""))
                .collect()
        };
        let header = RpmHeader {
            name: "big".into(),
            deps: vec![("provides", deps("p")), ("requires", deps("r"))],
            files: (0..n)
                .map(|i| RpmFile {
                    path: format!("/usr/bin/f{i}"),
                    dir: false,
                    ghost: false,
                })
                .collect(),
            ..RpmHeader::default()
        };
        let rpm = Arc::new(Rpm {
            header,
            size: 1,
            sha256: "ab".into(),
        });
        let started = std::time::Instant::now();
        let p = primary(&[("big.rpm".to_owned(), rpm)], 0);
        // Quadratic, this was 10^10 comparisons: minutes even optimised.
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
        assert_eq!(p.matches("<rpm:entry").count(), 2 * n);
    }

    #[test]
    fn names_with_control_characters_are_not_plain() {
        let h = RpmHeader {
            name: "a".into(),
            ..RpmHeader::default()
        };
        assert!(names_are_plain("a.rpm", &h));
        assert!(!names_are_plain("a\n.rpm", &h));
        let mut bad = h.clone();
        bad.name = "a\u{1}".into();
        assert!(!names_are_plain("a.rpm", &bad));
        bad = h.clone();
        bad.files = vec![RpmFile {
            path: "/etc/a\u{1b}".into(),
            dir: false,
            ghost: false,
        }];
        assert!(!names_are_plain("a.rpm", &bad));
    }

    #[test]
    fn text_and_attributes_are_escaped_as_libxml2_does() {
        assert_eq!(text("a&b<\"c\">\u{1}\n'\r"), "a&amp;b&lt;\"c\"&gt;\n'&#13;");
        assert_eq!(
            attr("a&b<\"c\">\u{1}\n'\t"),
            "a&amp;b&lt;&quot;c&quot;&gt;&#10;'&#9;"
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
