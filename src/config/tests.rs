use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_dlrepo() {
    let c = Config::from_sources(None, env(&[])).unwrap();
    assert_eq!(c.listen_port, 1337);
    assert_eq!(c.chunk_size, 262_144);
    assert_eq!(c.orphan_blob_lifetime, 600);
    assert!(!c.auth_disabled);
}

#[test]
fn environment_overrides_file() {
    let file = "listen_port = 8080\nroot_dir = \"/srv/a\"\nauth_disabled = true\n";
    let c = Config::from_sources(
        Some(("arbor.toml", file)),
        env(&[("DLREPO_LISTEN_PORT", "9090"), ("DLREPO_URL", "http://x")]),
    )
    .unwrap();
    assert_eq!(c.listen_port, 9090);
    assert_eq!(c.root_dir, PathBuf::from("/srv/a"));
    assert!(c.auth_disabled);
}

#[test]
fn auth_settings_are_typed() {
    let c = Config::from_sources(
        None,
        env(&[
            ("DLREPO_AUTH_FILE", "/srv/auth"),
            ("DLREPO_ACLS_DIR", "/srv/acls"),
            ("DLREPO_AUTH_HTTP_LOGIN_HEADER", "X-User"),
            ("DLREPO_AUTH_REALM", "corp"),
            ("DLREPO_AUTH_CACHE_TTL", "5"),
            ("DLREPO_IGNORE_PASSWORDS", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(c.auth_file, PathBuf::from("/srv/auth"));
    assert_eq!(c.acls_dir, PathBuf::from("/srv/acls"));
    assert_eq!(c.login_header.as_deref(), Some("X-User"));
    assert_eq!(c.groups_header, None);
    assert_eq!((c.auth_realm.as_str(), c.auth_cache_ttl), ("corp", 5));
    assert!(c.ignore_passwords);
    let e = Config::from_sources(None, env(&[("DLREPO_AUTH_CACHE_SIZE", "-1")])).unwrap_err();
    assert!(e.to_string().contains("DLREPO_AUTH_CACHE_SIZE"), "{e}");
}

#[test]
fn publish_settings_are_typed() {
    let c = Config::from_sources(None, env(&[])).unwrap();
    assert_eq!((c.publish_timeout, c.publish_max_requests), (300, 1));
    assert_eq!(c.publish_url, None);
    let c = Config::from_sources(
        None,
        env(&[
            ("DLREPO_PUBLISH_URL", "http://a, http://b"),
            ("DLREPO_PUBLISH_AUTH", "/etc/dlrepo/publish"),
            ("DLREPO_PUBLISH_TIMEOUT", "5"),
            ("DLREPO_PUBLISH_MAX_REQUESTS", "4"),
        ]),
    )
    .unwrap();
    assert_eq!(c.publish_url.as_deref(), Some("http://a, http://b"));
    assert_eq!(c.publish_auth, Some(PathBuf::from("/etc/dlrepo/publish")));
    assert_eq!((c.publish_timeout, c.publish_max_requests), (5, 4));
    let e = Config::from_sources(None, env(&[("DLREPO_PUBLISH_MAX_REQUESTS", "0")])).unwrap_err();
    assert!(e.to_string().contains("DLREPO_PUBLISH_MAX_REQUESTS"), "{e}");
}

#[test]
fn drain_and_zero_copy_settings() {
    let c = Config::from_sources(None, env(&[])).unwrap();
    assert_eq!((c.drain_timeout, c.zero_copy), (30, ZeroCopy::Remote));
    let set = [("DLREPO_DRAIN_TIMEOUT", "0"), ("DLREPO_ZERO_COPY", "0")];
    let c = Config::from_sources(None, env(&set)).unwrap();
    assert_eq!((c.drain_timeout, c.zero_copy), (0, ZeroCopy::Off));
    let c = Config::from_sources(None, env(&[("DLREPO_ZERO_COPY", "always")])).unwrap();
    assert_eq!(c.zero_copy, ZeroCopy::Always);
    for bad in ["yes", "true", "", "Always"] {
        let e = Config::from_sources(None, env(&[("DLREPO_ZERO_COPY", bad)])).unwrap_err();
        assert!(e.to_string().contains("expected 0, 1 or always"), "{e}");
    }
}

#[test]
fn inline_serving_is_opt_in_by_url_prefix() {
    let c = Config::from_sources(None, env(&[])).unwrap();
    assert!(!c.serves_inline("/branches/docs/t/j/html/index.html"));
    let c = Config::from_sources(
        Some((
            "a.toml",
            "inline_active_filter = '/branches/docs/|/~[^/]+/branches/docs/'",
        )),
        env(&[]),
    )
    .unwrap();
    assert!(c.serves_inline("/branches/docs/t/j/html/index.html"));
    assert!(c.serves_inline("/~bob/branches/docs/t/j/html/"));
    // Anchored at the start, as the other filters.
    assert!(!c.serves_inline("/branches/main/t/j/branches/docs/x.html"));
    assert!(!c.serves_inline("/branches/docsx/t/j/f/x.html"));
    let e = Config::from_sources(None, env(&[("DLREPO_INLINE_ACTIVE_FILTER", "(")])).unwrap_err();
    assert!(e.to_string().contains("DLREPO_INLINE_ACTIVE_FILTER"), "{e}");
    // Empty is unset, as in dlrepo (`if FILTER:`), not a pattern matching everything.
    let c = Config::from_sources(
        None,
        env(&[
            ("DLREPO_INLINE_ACTIVE_FILTER", ""),
            ("DLREPO_INTERNAL_FORMAT_FILTER", ""),
            ("DLREPO_POST_PROCESS_FILTER", ""),
        ]),
    )
    .unwrap();
    assert!(!c.serves_inline("/branches/docs/t/j/html/index.html"));
    assert!(c.internal_format_filter.is_none() && c.post_process_filter.is_none());
}

#[test]
fn errors_name_the_setting() {
    let e = Config::from_sources(None, env(&[("DLREPO_LISTEN_PORT", "x")])).unwrap_err();
    assert!(e.to_string().contains("DLREPO_LISTEN_PORT"), "{e}");
    let e = Config::from_sources(Some(("a.toml", "bogus = 1")), env(&[])).unwrap_err();
    assert!(
        e.to_string().contains("a.toml: unknown setting bogus"),
        "{e}"
    );
    let e = Config::from_sources(Some(("a.toml", "listen_prot = 1")), env(&[])).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("(the closest known one is listen_port)"),
        "{e}"
    );
    let e = Config::from_sources(None, env(&[("DLREPO_POST_PROCESS_FILTER", "(")])).unwrap_err();
    assert!(e.to_string().contains("DLREPO_POST_PROCESS_FILTER"), "{e}");
}

#[test]
fn unknown_variables_warn_with_the_closest_setting() {
    let (c, warnings) = Config::layered(
        None,
        env(&[
            ("DLREPO_VERSION", "1.2.3"),
            ("DLREPO_LISTEN_PROT", "8080"),
            ("DLREPO_LISTEN_PORT", "9090"),
            ("DLREPO_USER", "client-only, not warned about"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.listen_port, 9090);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("ignoring DLREPO_VERSION: "),
        "{warnings:?}"
    );
    assert!(
        warnings[1].ends_with("(the closest one is DLREPO_LISTEN_PORT)"),
        "{warnings:?}"
    );
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let file = "listen_port = 8080\nroot_dir = \"/srv/file\"\nlog_level = \"ERROR\"\n";
    let env = env(&[
        ("DLREPO_ROOT_DIR", "/srv/env"),
        ("DLREPO_LOG_LEVEL", "INFO"),
    ]);
    let flags = [("LOG_LEVEL", "DEBUG".to_owned())];
    let (c, _) = Config::layered(Some(("a.toml", file)), env, &flags).unwrap();
    assert_eq!(c.listen_port, 8080);
    assert_eq!(c.root_dir, PathBuf::from("/srv/env"));
    assert_eq!(c.log_level, tracing::Level::DEBUG);
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("", "ABC"), 3);
    assert_eq!(edit_distance("ROOT_DIR", "ROOT_DIR"), 0);
    assert_eq!(edit_distance("ROOTDIR", "ROOT_DIR"), 1);
    assert_eq!(edit_distance("LISTEN_PROT", "LISTEN_PORT"), 2);
    assert_eq!(closest_key("ACL_DIR"), "ACLS_DIR");
    assert_eq!(closest_key("AUTH_FLE"), "AUTH_FILE");
}

#[test]
fn signing_key_from_toml_and_environment() {
    let c = Config::from_sources(None, env(&[])).unwrap();
    assert_eq!(c.signing_key, None);
    let toml = Some(("a.toml", "signing_key = \"/etc/arbor/key.asc\""));
    let c = Config::from_sources(toml, env(&[])).unwrap();
    assert_eq!(c.signing_key, Some(PathBuf::from("/etc/arbor/key.asc")));
    let c = Config::from_sources(toml, env(&[("DLREPO_SIGNING_KEY", "/k")])).unwrap();
    assert_eq!(c.signing_key, Some(PathBuf::from("/k")));
}
