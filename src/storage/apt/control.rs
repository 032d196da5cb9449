//! A package's control file as a `Packages` stanza may carry it: deb822, each line a field
//! (`Name: value`, the name of letters, digits and `-`) or a continuation (starting with a
//! space or a tab), no blank line inside (it would start another stanza) and no control
//! character but the tab, no field twice (dpkg refuses that; apt would take the last, and
//! the server's identity of the package the first). The fields the server writes itself
//! (where the package is, its size and sums) are dropped, and the ones apt would check the
//! file against besides: a package's own `Filename` or `Checksum-FileSize` would otherwise
//! speak for the file in the server's place.

use std::collections::HashSet;
use std::io;

/// The fields the stanza writes after the control text, and the others apt checks a
/// downloaded file against (`SHA512`, `Checksum-FileSize`).
const SERVER_FIELDS: [&str; 7] = [
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Checksum-FileSize",
];

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// `text` checked and without the server's fields (and their continuations), ending with
/// one newline; an error when it is not a single deb822 paragraph with a `Package`.
pub(crate) fn clean(text: &str) -> io::Result<String> {
    let body = text.trim_end_matches(['\n', '\r', ' ', '\t']);
    let mut out = String::with_capacity(body.len() + 1);
    let (mut dropping, mut any, mut package) = (false, false, false);
    let mut seen = HashSet::new();
    for line in body.split('\n') {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(invalid("control character in the control file"));
        }
        if line.trim().is_empty() {
            return Err(invalid("blank line in the control file (a second stanza)"));
        }
        if line.starts_with([' ', '\t']) {
            if !any {
                return Err(invalid("control file starts with a continuation line"));
            }
        } else {
            let Some((name, _)) = line.split_once(':') else {
                return Err(invalid("control file line is no field"));
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(invalid("bad field name in the control file"));
            }
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(invalid("a field twice in the control file"));
            }
            any = true;
            package |= name.eq_ignore_ascii_case("Package");
            dropping = SERVER_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name));
        }
        if !dropping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !package {
        return Err(invalid("control file without Package"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_control_file_is_kept() {
        let text = "Package: a\nVersion: 1\nDescription: x\n more\n .\n\tend\n";
        assert_eq!(clean(text).unwrap(), text);
        assert_eq!(clean("Package: a\n\n\n").unwrap(), "Package: a\n");
    }

    #[test]
    fn no_second_stanza_can_be_smuggled_in() {
        for text in [
            "Package: a\n\nPackage: injected\nFilename: ./../../etc/x.deb\n",
            "Package: a\n \nPackage: injected\n",
            "Package: a\nDescription: x\n\t\nPackage: injected\n",
            "Package: a\r\n\r\nPackage: injected\r\n",
            " Package: a\n",
            "Package: a\nnot a field\n",
            "Package: a\nBad Name: x\n",
            "Package: a\nX: \u{1b}[2J\n",
            "Version: 1\n",
            "Package: a\nVersion: 1\nversion: 2\n",
        ] {
            assert!(clean(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_servers_own_fields_are_dropped() {
        let text = "Package: a\nfilename: ./../x.deb\nSize: 1\nMD5sum: 00\nSHA256: 00\n \
                    cont\nVersion: 1\nSHA1: 00\nChecksum-FileSize: 999999999\n";
        assert_eq!(clean(text).unwrap(), "Package: a\nVersion: 1\n");
    }
}
