use super::*;

const READ: Want = Want {
    add: false,
    delete: false,
    update: false,
};
const ADD: Want = Want {
    add: true,
    delete: false,
    update: false,
};
const DELETE: Want = Want {
    add: false,
    delete: true,
    update: false,
};
const UPDATE: Want = Want {
    add: false,
    delete: false,
    update: true,
};

fn acls(text: &str) -> Acls {
    let mut acls = Acls::empty();
    acls.parse_group("g", "g", text).unwrap();
    acls
}

fn can(acls: &Acls, login: Option<&str>, path: &str, want: Want) -> bool {
    acls.grants(&["g".to_owned()], login, path, want)
}

fn reads(acls: &Acls, path: &str) -> bool {
    can(acls, Some("carol"), path, READ)
}

/// The three files of spec/AUTH.md §6.5.
fn spec_example() -> Acls {
    let mut acls = Acls::empty();
    let readers = "r /\nr /branches/\nr /branches/** !/branches/secret/**\nr /v2/**\n\
                   ro /products/**\nrx /nope/**\nw /ignored/**\n";
    let devs = "ra /~$user/**\nrw /branches/dev/**\nr ~^/products/(foo|bar)/.*$\n";
    let anonymous = "r /branches/\nrw /branches/anon/**\n";
    acls.parse_group("readers", "readers", readers).unwrap();
    acls.parse_group("devs", "devs", devs).unwrap();
    acls.parse_group("ANONYMOUS", "ANONYMOUS", anonymous)
        .unwrap();
    acls
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn spec_readers() {
    let acls = spec_example();
    let g = groups(&["readers"]);
    let can = |path, want| acls.grants(&g, Some("bob"), path, want);
    assert!(can("/", READ));
    assert!(can("/branches/", READ));
    assert!(can("/branches/main/", READ));
    assert!(!can("/branches/secret/", READ));
    assert!(!can("/branches/secret/tag/", READ));
    assert!(can("/v2/", READ));
    assert!(can("/v2/img/manifests/latest", READ));
    assert!(can("/products/foo/", READ));
    assert!(!can("/products/foo/", ADD));
    assert!(!can("/nope/x", READ));
    assert!(!can("/ignored/x", READ));
    assert!(!can("/ignored/x", ADD));
    assert!(!can("/branches/main/", ADD));
    assert!(!can("/branches", READ));
}

#[test]
fn spec_devs() {
    let acls = spec_example();
    let g = groups(&["devs"]);
    let can = |login, path, want| acls.grants(&g, Some(login), path, want);
    assert!(can("carol", "/~carol/branches/x/", ADD));
    assert!(can("carol", "/~carol/branches/x/", READ));
    assert!(!can("carol", "/~carol/branches/x/", DELETE));
    assert!(!can("carol", "/~dave/branches/x/", ADD));
    assert!(can("dave", "/~dave/branches/x/", ADD));
    for want in [READ, ADD, DELETE, UPDATE] {
        assert!(can("carol", "/branches/dev/t/j/", want));
    }
    assert!(can("carol", "/products/foo/", READ));
    assert!(can("carol", "/products/bar/v/", READ));
    assert!(!can("carol", "/products/", READ));
    assert!(!can("carol", "/products/baz/", READ));
    assert!(!can("carol", "/products/foo/", ADD));
}

#[test]
fn spec_anonymous_and_union() {
    let acls = spec_example();
    let anon = groups(&["ANONYMOUS"]);
    assert!(acls.grants(&anon, None, "/branches/", READ));
    assert!(!acls.grants(&anon, None, "/branches/main/", READ));
    // The ACL does grant it: "writes always need a login" is the middleware's step 6 (§2).
    assert!(acls.grants(&anon, None, "/branches/anon/t/", ADD));

    let both = groups(&["readers", "devs"]);
    assert!(acls.grants(&both, Some("carol"), "/branches/main/", READ));
    assert!(acls.grants(&both, Some("carol"), "/~carol/x", ADD));
    assert!(!acls.grants(&both, Some("carol"), "/branches/main/", ADD));
    assert!(!acls.grants(&groups(&["nobody"]), Some("carol"), "/", READ));
    assert!(!acls.grants(&[], Some("carol"), "/", READ));
    assert_eq!(acls.groups(), ["ANONYMOUS", "devs", "readers"]);
}

#[test]
fn empty_grants_nothing() {
    let acls = Acls::empty();
    assert!(!acls.grants(&groups(&["g"]), Some("a"), "/", READ));
    assert!(acls.groups().is_empty());
}

#[test]
fn double_star_needs_the_slash() {
    let acls = acls("r /branches/**");
    assert!(reads(&acls, "/branches/"));
    assert!(reads(&acls, "/branches/a/b/c.txt"));
    assert!(!reads(&acls, "/branches"));
    assert!(!reads(&acls, "/branchesx/"));
    assert!(!reads(&acls, "/x/branches/"));
}

#[test]
fn star_stays_in_one_segment() {
    let one = acls("r /branches/*/");
    assert!(reads(&one, "/branches/x/"));
    assert!(!reads(&one, "/branches/x/y/"));
    assert!(!reads(&one, "/branches/x"));
    assert!(!reads(&one, "/branches/"));
    // `***` is `**` then `*`: still crosses slashes.
    let triple = acls("r /a/***");
    assert!(reads(&triple, "/a/b/c"));
}

#[test]
fn question_mark_is_one_non_slash_char() {
    let acls = acls("r /t?g");
    assert!(reads(&acls, "/tag"));
    assert!(reads(&acls, "/tég"));
    assert!(!reads(&acls, "/tg"));
    assert!(!reads(&acls, "/taag"));
    assert!(!reads(&acls, "/t/g"));
}

#[test]
fn other_glob_chars_are_literal() {
    let acls = acls("r /a.b\nr /c+d\nr /(e)\nr /[fg]\nr /h^$|{2}\\");
    assert!(reads(&acls, "/a.b"));
    assert!(!reads(&acls, "/axb"));
    assert!(reads(&acls, "/c+d"));
    assert!(!reads(&acls, "/ccd"));
    assert!(reads(&acls, "/(e)"));
    assert!(!reads(&acls, "/e"));
    assert!(reads(&acls, "/[fg]"));
    assert!(!reads(&acls, "/f"));
    assert!(reads(&acls, "/h^$|{2}\\"));
}

#[test]
fn positive_patterns_all_match() {
    let acls = acls("r /a/** /a/b/**");
    assert!(reads(&acls, "/a/b/c"));
    assert!(!reads(&acls, "/a/c"));
}

#[test]
fn exclusions() {
    let acls = acls("r /** !/secret/** !/x/*.key");
    assert!(reads(&acls, "/public/"));
    assert!(!reads(&acls, "/secret/"));
    assert!(!reads(&acls, "/secret/deep/er"));
    assert!(reads(&acls, "/secret"));
    assert!(!reads(&acls, "/x/a.key"));
    assert!(reads(&acls, "/x/y/a.key"));
}

#[test]
fn exclusion_only_line_grants_everything_else() {
    let acls = acls("r !/secret/**");
    assert!(reads(&acls, "/"));
    assert!(reads(&acls, "/anything/at/all"));
    assert!(!reads(&acls, "/secret/x"));
    assert!(!can(&acls, Some("carol"), "/anything", ADD));
    // A decoded %0A must not slip past the exclusion (safe fix, see compile_glob).
    assert!(!reads(&acls, "/secret/a\nb"));
}

#[test]
fn access_letters() {
    let table = [
        ("r", [true, false, false, false]),
        ("ro", [true, false, false, false]),
        ("ra", [true, true, false, false]),
        ("rd", [true, false, true, false]),
        ("ru", [true, false, false, true]),
        ("rad", [true, true, true, false]),
        ("rau", [true, true, false, true]),
        ("rdu", [true, false, true, true]),
        ("radu", [true, true, true, true]),
        ("rw", [true, true, true, true]),
        ("wr", [true, true, true, true]),
        ("rrw", [true, true, true, true]),
    ];
    for (letters, expected) in table {
        let acls = acls(&format!("{letters} /**"));
        let got = [READ, ADD, DELETE, UPDATE].map(|want| can(&acls, Some("c"), "/x", want));
        assert_eq!(got, expected, "{letters}");
    }
    let both = Want {
        add: true,
        delete: true,
        update: false,
    };
    assert!(!can(&acls("ra /**"), Some("c"), "/x", both));
    assert!(can(&acls("rad /**"), Some("c"), "/x", both));
}

#[test]
fn bad_access_letters_skip_the_line() {
    for letters in ["rx", "w", "a", "R", "x", "rW", "r,w"] {
        let acls = acls(&format!("{letters} /**"));
        assert!(acls.groups().is_empty(), "{letters}");
        assert!(!reads(&acls, "/x"), "{letters}");
    }
}

#[test]
fn comments_and_short_lines() {
    let acls =
        acls("# r /commented/**\nr /a/**# trailing\nr /b#/**\nr #/c/**\nr\n\n   \nrw\t/d/**  \r\n");
    assert!(reads(&acls, "/a/x"));
    // The comment cuts the pattern itself: `/b`.
    assert!(reads(&acls, "/b"));
    assert!(!reads(&acls, "/b/x"));
    assert!(!reads(&acls, "/c/x"));
    assert!(!reads(&acls, "/commented/x"));
    assert!(can(&acls, Some("c"), "/d/x", DELETE));
}

#[test]
fn duplicate_lines_merge() {
    let mut acls = acls("r /a/** !/a/b/**\nr !/a/b/** /a/**\nr /a/**  /a/** !/a/b/**");
    acls.parse_group("g", "g", "r /a/** !/a/b/**").unwrap();
    acls.parse_group("h", "h", "r /a/** !/a/b/**").unwrap();
    assert_eq!(acls.groups["g"].acls.len(), 1);
    assert_eq!(acls.groups["h"].acls.len(), 1);
    assert!(reads(&acls, "/a/x"));
    assert!(!reads(&acls, "/a/b/x"));
}

#[test]
fn user_in_globs() {
    let acls = acls("ra /~$user/**\nr /$user/$user/**\nr /o/*$user\nr /s/*$user*");
    let can = |login, path| can(&acls, login, path, READ);
    assert!(can(Some("carol"), "/~carol/x"));
    assert!(can(Some("carol"), "/~carol/"));
    assert!(!can(Some("carol"), "/~carolx/"));
    assert!(!can(Some("carol"), "/~dave/x"));
    assert!(can(Some("alice"), "/alice/alice/x"));
    assert!(!can(Some("alice"), "/alice/bob/x"));
    // Exact cuts: a login holding `/`, overlapping occurrences.
    assert!(can(Some("a/b"), "/~a/b/x"));
    assert!(can(Some("aa"), "/o/aaa"));
    assert!(!can(Some("aa"), "/o/a"));
    // The login is literal text, not glob or regex syntax.
    assert!(!can(Some("a.b"), "/~axb/x"));
    assert!(can(Some("a.b"), "/~a.b/x"));
    assert!(!can(Some("a*"), "/~abc/x"));
    assert!(can(Some("a*"), "/~a*/x"));
    // Anonymous: `$user` is "" before translation, so `*$user*` becomes `**` (dlrepo).
    assert!(can(None, "/~/x"));
    assert!(!can(None, "/~carol/x"));
    assert!(can(None, "/s/a/b"));
    assert!(!can(Some("q"), "/s/a/b"));
    assert!(can(Some("q"), "/s/aqb"));
    assert!(can(Some(""), "/~/x"));
}

#[test]
fn regexes_are_anchored_at_the_start_only() {
    let acls = acls("rw ~/branches/main/tag\\d/job/[^/]+/file\\d\\.txt\nr ~/a|/b\nr ~/c$");
    let path = "/branches/main/tag1/job/j/file2.txt";
    assert!(can(&acls, Some("c"), path, ADD));
    assert!(can(&acls, Some("c"), &format!("{path}.more"), ADD));
    assert!(!can(&acls, Some("c"), &format!("/x{path}"), ADD));
    assert!(!can(
        &acls,
        Some("c"),
        "/branches/main/tagx/job/j/file2.txt",
        ADD
    ));
    // The anchor covers every alternative, as with re.match.
    assert!(reads(&acls, "/axyz"));
    assert!(reads(&acls, "/b/c"));
    assert!(!reads(&acls, "/x/b"));
    assert!(reads(&acls, "/c"));
    assert!(!reads(&acls, "/c/"));
}

#[test]
fn user_in_regexes() {
    let acls = acls("ra ~/~$user/.*\nr ~/u/($user|all)/$");
    let can = |login, path, want| can(&acls, login, path, want);
    assert!(can(Some("carol"), "/~carol/x", ADD));
    assert!(!can(Some("carol"), "/~dave/x", READ));
    assert!(can(Some("carol"), "/u/carol/", READ));
    assert!(can(Some("carol"), "/u/all/", READ));
    assert!(!can(Some("carol"), "/u/carolx/", READ));
    // Escaped login: metacharacters are literal.
    assert!(!can(Some("a.b"), "/~axb/x", READ));
    assert!(can(Some("a.b"), "/~a.b/x", READ));
    assert!(!can(Some(".*"), "/~anything/x", READ));
    assert!(!can(Some("x|/"), "/u/zzz/", READ));
    assert!(can(None, "/~/x", READ));
    assert!(!can(None, "/~carol/x", READ));
    // Same answers from the cache.
    assert!(can(Some("carol"), "/~carol/x", ADD));
    assert!(!can(Some("a.b"), "/~axb/x", READ));
}

#[test]
fn unusable_regex_voids_its_acl() {
    // Fine for a login, but `^(?:*)` for anonymous: the exclusion cannot be checked, so the
    // line must grant nothing rather than everything.
    let acls = acls("r /** !~$user*");
    assert!(!can(&acls, None, "/x", READ));
    assert!(can(&acls, Some("carol"), "/x", READ));
    assert!(!can(&acls, Some("carol"), "carolll", READ));
}

#[test]
fn cache_stays_bounded() {
    let acls = acls("r ~/~$user/");
    for i in 0..CACHE_MAX + 10 {
        let login = format!("u{i}");
        assert!(can(&acls, Some(&login), &format!("/~{login}/"), READ));
        assert!(!can(&acls, Some(&login), "/~other/", READ));
    }
    assert!(acls.cache.lock().unwrap().len <= CACHE_MAX);
}

#[test]
fn invalid_regex_names_file_and_line() {
    let mut acls = acls("r /a/**");
    for bad in ["~/x/(", "~a)|(b", "~/~$user/(", "!~[z-a]"] {
        let text = format!("r /ok/**\n# comment\nr /** {bad}\nr /fine/**");
        let err = acls.parse_group("g", "acls/g", &text).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("acls/g", 3), "{bad}");
        assert!(err.to_string().starts_with("acls/g:3: "), "{err}");
    }
    // Nothing of a refused file is kept.
    assert!(!reads(&acls, "/ok/x"));
    assert!(reads(&acls, "/a/x"));
    let mut fresh = Acls::empty();
    assert!(fresh.parse_group("new", "new", "r ~(").is_err());
    assert!(fresh.groups().is_empty());
}

#[test]
fn want_for_methods() {
    let table = [
        ("GET", "/branches/", READ),
        ("HEAD", "/x", READ),
        ("OPTIONS", "/x", READ),
        ("PROPFIND", "/x", READ),
        ("get", "/x", READ),
        ("PUT", "/branches/b/t/j/f/a.txt", ADD),
        ("PUT", "/v2/img/blobs/uploads/u", ADD),
        ("PATCH", "/branches/b/t/j/f/", ADD),
        ("POST", "/v2/img/blobs/uploads/", ADD),
        ("POST", "/v2/", ADD),
        ("POST", "/v2", UPDATE),
        ("POST", "/branches/b/t/", UPDATE),
        ("DELETE", "/branches/b/t/j/", DELETE),
        ("DELETE", "/v2/img/manifests/t", DELETE),
    ];
    for (method, path, want) in table {
        assert_eq!(want_for(method, path), want, "{method} {path}");
    }
    assert_eq!(Want::default(), READ);
}

#[test]
fn load_dir_reads_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readers"), "r /branches/**\n").unwrap();
    std::fs::write(dir.path().join("devs"), "rw /branches/dev/**\nrx /x/**\n").unwrap();
    std::fs::write(dir.path().join("empty"), "# nothing\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub").join("inner"), "r /**\n").unwrap();
    // Symlinks count by their target, as with Python's is_file(); dangling ones are skipped.
    std::os::unix::fs::symlink("readers", dir.path().join("linked")).unwrap();
    std::os::unix::fs::symlink("sub", dir.path().join("linked-dir")).unwrap();
    std::os::unix::fs::symlink("absent", dir.path().join("dangling")).unwrap();
    let acls = Acls::load_dir(dir.path()).unwrap();
    assert_eq!(acls.groups(), ["devs", "linked", "readers"]);
    let g = groups(&["readers"]);
    assert!(acls.grants(&g, Some("a"), "/branches/x", READ));
    assert!(!acls.grants(&g, Some("a"), "/branches/x", ADD));
    assert!(acls.grants(&groups(&["devs"]), Some("a"), "/branches/dev/x", DELETE));
    assert!(!acls.grants(&groups(&["sub"]), Some("a"), "/x", READ));
    assert!(!acls.grants(&groups(&["inner"]), Some("a"), "/x", READ));
}

#[test]
fn load_dir_missing_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let acls = Acls::load_dir(&dir.path().join("absent")).unwrap();
    assert!(acls.groups().is_empty());
}

#[test]
fn load_dir_reports_bad_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good"), "r /**\n").unwrap();
    std::fs::write(dir.path().join("bad"), "r /a/**\nr ~/b/[\n").unwrap();
    let err = Acls::load_dir(dir.path()).unwrap_err();
    assert_eq!(err.file, dir.path().join("bad").display().to_string());
    assert_eq!(err.line, 2);
}

#[test]
fn acls_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Acls>();
}

#[test]
fn what_may_be_read_below_a_prefix() {
    let may = |text: &str, login: Option<&str>, prefix: &str| {
        acls(text).may_read_under(&["g".to_owned()], login, prefix)
    };
    let one = "r /branches/public/**";
    assert!(may(one, Some("carol"), "/branches/public/"));
    assert!(may(one, Some("carol"), "/branches/public/t/j/"));
    assert!(may(one, Some("carol"), "/branches/"));
    assert!(!may(one, Some("carol"), "/branches/secret/"));
    assert!(!may(one, Some("carol"), "/~carol/branches/public/"));
    let but = "r /** !/branches/secret/**";
    assert!(may(but, Some("carol"), "/branches/"));
    assert!(!may(but, Some("carol"), "/branches/secret/"));
    assert!(!may(but, Some("carol"), "/branches/secret/t/"));
    assert!(may(but, Some("carol"), "/branches/secrets/"));
    // Exclusions that do not cover the whole prefix hide nothing of it.
    assert!(may("r /** !/**.deb", None, "/branches/x/"));
    let own = "r /~$user/**";
    assert!(may(own, Some("carol"), "/~carol/branches/b/"));
    assert!(!may(own, Some("carol"), "/~bob/branches/b/"));
    assert!(!may(own, None, "/~bob/"));
    // A ~regex is taken to match anything and to exclude nothing.
    assert!(may("r ~/nothing$", Some("carol"), "/branches/x/"));
    assert!(may("r /** !~/branches/.*", Some("carol"), "/branches/x/"));
    assert!(may(one, Some("carol"), "/"));
    assert!(!acls(one).may_read_under(&["other".to_owned()], Some("carol"), "/"));
}

#[test]
fn a_path_read_is_never_below_a_prefix_said_unreadable() {
    let rules = [
        "r /branches/public/**",
        "r /** !/branches/secret/**",
        "r /branches/*/t1/** !/branches/x/t1/j/**",
        "r /~$user/** /**.deb",
        "r /*/a?c/*/**",
    ];
    let paths = [
        "/branches/public/t/j/f/a.deb",
        "/branches/secret/t/j/",
        "/branches/x/t1/j/f/x",
        "/branches/y/t1/j/f/x",
        "/~carol/branches/abc/t/j/f/a.deb",
        "/branches/abc/t/j/",
        "/branches/a/c/t/",
    ];
    for rule in rules {
        let a = acls(rule);
        for login in [Some("carol"), None] {
            for path in paths {
                if !can(&a, login, path, READ) {
                    continue;
                }
                for (i, _) in path.match_indices('/') {
                    let prefix = &path[..=i];
                    assert!(
                        a.may_read_under(&["g".to_owned()], login, prefix),
                        "{rule}: {path} read, {prefix} said unreadable"
                    );
                }
            }
        }
    }
}
