//! The workflows of the OCI distribution-spec conformance suite (opencontainers/
//! distribution-spec, `conformance/`: pull, push, content discovery, content management),
//! replayed in process against the real router. The suite itself is Go and needs
//! modules this machine cannot fetch; these tests send the requests it sends, in its order,
//! with its kind of content, and check what it checks, strictly where the suite tolerates
//! several answers (arbor's choices are in docs/registry.md).

use crate::common;
use crate::shared::oci_workflows::{
    LAYER, OCI_MANIFEST, config, image_manifest, pretty, push_blob, put_manifest, tags,
};

use common::{App, Client as _, Res, digest_of};
use serde_json::{Value, json};

fn code(r: &Res) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Pushes the config, the layer and the manifest under `tag`; returns the manifest.
fn push_image(s: &App, name: &str, tag: &str, author: &str) -> Vec<u8> {
    let cfg = config(author);
    push_blob(s, name, &cfg);
    push_blob(s, name, LAYER);
    let m = image_manifest(&cfg);
    let r = put_manifest(s, name, tag, &m);
    assert_eq!(r.status, 201, "PUT {name}:{tag}: {}", r.text());
    m
}

// ---- content discovery: tags ---------------------------------------------------------------

/// `tags/list` of a name the registry never saw is `404 NAME_UNKNOWN` (OCI distribution
/// spec, "Listing Tags"); a repository that only has blobs waiting for their manifest is
/// known, with no tags.
#[test]
fn tags_list_of_an_unknown_repository_is_name_unknown() {
    let s = App::start();
    for name in ["main/never", "u/bob/main/never", "prod/var/never"] {
        let r = s.get(&format!("/v2/{name}/tags/list"));
        assert_eq!(
            (r.status, code(&r)),
            (404, "NAME_UNKNOWN".to_owned()),
            "{name}: {}",
            r.text()
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    push_blob(&s, "main/started", b"a layer, its manifest still to come");
    assert!(tags(&s, "main/started", "").is_empty());
    // A neighbour's content makes no other name known.
    let r = s.get("/v2/main/started2/tags/list");
    assert_eq!(r.status, 404);
    push_blob(&s, "u/bob/main/started", b"a user's layer");
    assert!(tags(&s, "u/bob/main/started", "").is_empty());
    assert_eq!(s.get("/v2/u/carol/main/started/tags/list").status, 404);
}

// ---- content discovery: referrers ----------------------------------------------------------

const EMPTY_JSON: &[u8] = b"{}";
const ANNOTATION: &str = "org.opencontainers.conformance.test";
const TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
const TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";

fn desc(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest_of(data), "size": data.len()})
}

/// An artifact whose type is its config's media type (the suite's "config" artifacts).
fn config_artifact(subject: &[u8], atype: &str, blob: &[u8], note: &str) -> Vec<u8> {
    pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(atype, blob),
        "layers": [desc("application/vnd.oci.empty.v1+json", EMPTY_JSON)],
        "subject": desc(OCI_MANIFEST, subject),
        "annotations": {ANNOTATION: note},
    }))
}

/// An artifact with `artifactType` and the empty config (the suite's "layer" artifacts).
fn layer_artifact(subject: &[u8], atype: &str, blob: &[u8], note: Option<&str>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": atype,
        "config": desc("application/vnd.oci.empty.v1+json", EMPTY_JSON),
        "layers": [desc(atype, blob)],
        "subject": desc(OCI_MANIFEST, subject),
    });
    if let Some(note) = note {
        m["annotations"] = json!({ANNOTATION: note});
    }
    pretty(&m)
}

fn referrers(s: &App, name: &str, digest: &str, query: &str) -> (Res, Vec<Value>) {
    let r = s.get(&format!("/v2/{name}/referrers/{digest}{query}"));
    assert_eq!(r.status, 200, "referrers of {digest}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    let body = r.json();
    assert_eq!(body["schemaVersion"], 2);
    let list = body["manifests"].as_array().cloned().expect("manifests");
    (r, list)
}

fn digests(list: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|d| d["digest"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The suite's referrers setup, in its order: artifacts pushed by digest before and after
/// their subject is pushed by tag, an index artifact, and one whose subject never comes.
/// Every one is listed under its subject, whichever way it was pushed, each push of a
/// manifest with a subject answers `OCI-Subject`, and `artifactType` filters.
#[test]
fn referrers_list_manifests_pushed_by_digest_or_tag() {
    let s = App::start();
    let name = "main/refs";
    let (blob_a, blob_b) = (
        b"NHL Peanut Butter on my NHL bagel".as_slice(),
        b"NBA Strawberry Jam on my NBA croissant".as_slice(),
    );
    let cfg = config("discovery");
    let subject = image_manifest(&cfg);
    let missing = image_manifest(&config("never pushed"));
    let (sd, missing_d) = (digest_of(&subject), digest_of(&missing));

    let a_config = config_artifact(&subject, TYPE_A, blob_a, "test config a");
    let a_layer = layer_artifact(&subject, TYPE_A, blob_a, Some("test layer a"));
    let index = pretty(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "artifactType": "application/vnd.food.stand",
        "manifests": [desc(OCI_MANIFEST, &a_config), desc(OCI_MANIFEST, &a_layer)],
        "subject": desc(OCI_MANIFEST, &subject),
        "annotations": {ANNOTATION: "test index"},
    }));
    let b_config = config_artifact(&subject, TYPE_B, blob_b, "test config b");
    let b_layer = layer_artifact(&subject, TYPE_B, blob_b, Some("test layer b"));
    let c_layer = layer_artifact(&missing, TYPE_B, blob_b, None);
    let by_digest = |m: &[u8], subject: &str| {
        let r = put_manifest(&s, name, &digest_of(m), m);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("oci-subject"), Some(subject), "{}", r.text());
    };

    push_blob(&s, name, EMPTY_JSON);
    push_blob(&s, name, blob_a);
    by_digest(&a_config, &sd);
    by_digest(&a_layer, &sd);
    by_digest(&index, &sd);
    push_blob(&s, name, &cfg);
    push_blob(&s, name, LAYER);
    let r = put_manifest(&s, name, "tagtest0", &subject);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), None, "the image has no subject");
    push_blob(&s, name, blob_b);
    by_digest(&b_config, &sd);
    by_digest(&b_layer, &sd);
    by_digest(&c_layer, &missing_d);

    // A digest nothing refers to: an empty index, never a 404.
    let (_, list) = referrers(&s, name, &digest_of(b"hello world"), "");
    assert!(list.is_empty());

    let all = [&a_config, &a_layer, &index, &b_config, &b_layer];
    let want = sorted(all.iter().map(|m| digest_of(m)).collect());
    let (r, list) = referrers(&s, name, &sd, "");
    assert_eq!(digests(&list), want);
    assert_eq!(r.header("oci-filters-applied"), None);
    for d in &list {
        let m = all
            .iter()
            .find(|m| digest_of(m) == d["digest"])
            .expect("a pushed artifact");
        let doc: Value = serde_json::from_slice(m).unwrap();
        assert_eq!(d["size"], m.len());
        assert_eq!(d["mediaType"], doc["mediaType"]);
        assert_eq!(d["annotations"], doc["annotations"]);
        assert_eq!(d["annotations"].as_object().map(|a| a.len()), Some(1));
        let atype = doc
            .get("artifactType")
            .unwrap_or(&doc["config"]["mediaType"]);
        assert_eq!(&d["artifactType"], atype);
    }

    // Filtered by artifactType, saying so; a `+` in the type is a plus.
    let (r, list) = referrers(&s, name, &sd, &format!("?artifactType={TYPE_A}"));
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(
        digests(&list),
        sorted(vec![digest_of(&a_config), digest_of(&a_layer)])
    );
    let (_, list) = referrers(&s, name, &sd, "?artifactType=application/x%2Bnone");
    assert!(list.is_empty());

    // The subject that never came still has its referrer.
    let (_, list) = referrers(&s, name, &missing_d, "");
    assert_eq!(digests(&list), [digest_of(&c_layer)]);

    // Tagging a referrer lists it once.
    let r = put_manifest(&s, name, "sig", &b_layer);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(sd.as_str()));
    let (_, list) = referrers(&s, name, &sd, "");
    assert_eq!(digests(&list), want);
    let (_, list) = referrers(&s, name, &sd, "?artifactType=application/vnd.food.stand");
    assert_eq!(digests(&list), [digest_of(&index)]);
}

/// Referrers are scoped like blobs (spec/CONTAINER.md §3.7): another repository's
/// artifact for the same subject is not listed, and a repository with nothing answers an
/// empty list.
#[test]
fn referrers_never_show_another_repository() {
    let s = App::start();
    let cfg = config("scoped");
    let subject = image_manifest(&cfg);
    let sd = digest_of(&subject);
    let blob = b"signature bytes".as_slice();
    let mut pushed = Vec::new();
    for (name, atype) in [("main/one", TYPE_A), ("u/bob/main/one", TYPE_B)] {
        push_blob(&s, name, EMPTY_JSON);
        push_blob(&s, name, blob);
        let m = layer_artifact(&subject, atype, blob, Some(name));
        let r = put_manifest(&s, name, &digest_of(&m), &m);
        assert_eq!(r.status, 201, "{}", r.text());
        pushed.push(digest_of(&m));
    }
    let (_, list) = referrers(&s, "main/one", &sd, "");
    assert_eq!(digests(&list), [pushed[0].clone()]);
    let (_, list) = referrers(&s, "u/bob/main/one", &sd, "");
    assert_eq!(digests(&list), [pushed[1].clone()]);
    for name in ["main/two", "u/carol/main/one", "prod/var/pb"] {
        let (_, list) = referrers(&s, name, &sd, "");
        assert!(list.is_empty(), "{name}: {list:?}");
    }
}

/// The referrers list shows what the caller may read, as every listing does: each entry is
/// checked as `/v2/{name}/manifests/{digest}`.
#[test]
fn referrers_hide_what_the_caller_cannot_read() {
    use common::auth::Secured;
    let cfg = config("acl");
    let subject = image_manifest(&cfg);
    let sd = digest_of(&subject);
    let blob = b"sbom".as_slice();
    let open = layer_artifact(&subject, TYPE_A, blob, Some("open"));
    let hidden = layer_artifact(&subject, TYPE_B, blob, Some("hidden"));
    let s = Secured::start(
        &[("pat", "secret", "pushers"), ("eve", "pw", "readers")],
        &[
            ("pushers", "ra /v2/**\n"),
            (
                "readers",
                &format!(
                    "r /v2/main/sec/referrers/**\nr /v2/main/sec/manifests/{}\n",
                    digest_of(&open)
                ),
            ),
        ],
    );
    let push = |path: &str, data: &[u8], digest: Option<&str>| {
        let url = match digest {
            Some(d) => format!("{path}?digest={d}"),
            None => path.to_owned(),
        };
        let r = s.send(
            "pat",
            if digest.is_some() { "POST" } else { "PUT" },
            &url,
            &[("Content-Type", OCI_MANIFEST)],
            Some(data),
        );
        assert_eq!(r.status, 201, "{url}: {}", r.text());
    };
    for b in [EMPTY_JSON, blob] {
        push("/v2/main/sec/blobs/uploads/", b, Some(&digest_of(b)));
    }
    for m in [&open, &hidden] {
        push(&format!("/v2/main/sec/manifests/{}", digest_of(m)), m, None);
    }
    let url = format!("/v2/main/sec/referrers/{sd}");
    let list = |login: &str| {
        let r = s.get(login, &url);
        assert_eq!(r.status, 200, "{login}: {}", r.text());
        digests(r.json()["manifests"].as_array().expect("manifests"))
    };
    assert_eq!(
        list("pat"),
        sorted(vec![digest_of(&open), digest_of(&hidden)])
    );
    assert_eq!(list("eve"), [digest_of(&open)]);
}

// ---- content management -------------------------------------------------------------------

fn gone(s: &App, url: &str, want: &str) {
    let r = s.get(url);
    assert_eq!((r.status, code(&r)), (404, want.to_owned()), "{url}");
}

/// The content management workflow and the pull workflow's teardown: the manifest is
/// deleted first (by tag, then by digest), then its blobs. The blobs stay in the repository
/// after the manifest goes, as in any OCI registry, until deleted: each `DELETE` answers
/// 202, then the blob is gone (the suite fails a 404 there). While an image links a blob,
/// its `DELETE` is refused and changes nothing.
#[test]
fn blobs_outlive_their_manifest_until_deleted() {
    let s = App::start();
    let name = "main/managed";
    let m = push_image(&s, name, "tagtest0", "management");
    let (md, cfg_d, layer_d) = (
        digest_of(&m),
        digest_of(&config("management")),
        digest_of(LAYER),
    );
    let num_tags = tags(&s, name, "").len();
    assert_eq!(num_tags, 1);

    // In use: refused, still readable.
    for d in [&cfg_d, &layer_d, &md] {
        let r = s.delete(&format!("/v2/{name}/blobs/{d}"));
        assert_eq!((r.status, code(&r)), (405, "DENIED".to_owned()), "{d}");
        assert_eq!(r.header("allow"), Some("GET,HEAD"));
        let why = r.json()["errors"][0]["message"].to_string();
        assert!(why.contains("tagtest0"), "{why}");
        assert_eq!(s.head(&format!("/v2/{name}/blobs/{d}")).status, 200);
    }

    let r = s.delete(&format!("/v2/{name}/manifests/tagtest0"));
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s.delete(&format!("/v2/{name}/manifests/{md}"));
    assert_eq!((r.status, code(&r)), (404, "MANIFEST_UNKNOWN".to_owned()));
    gone(
        &s,
        &format!("/v2/{name}/manifests/{md}"),
        "MANIFEST_UNKNOWN",
    );
    gone(
        &s,
        &format!("/v2/{name}/manifests/tagtest0"),
        "MANIFEST_UNKNOWN",
    );
    assert!(tags(&s, name, "").len() < num_tags);

    for d in [&cfg_d, &layer_d] {
        let url = format!("/v2/{name}/blobs/{d}");
        assert_eq!(s.head(&url).status, 200, "{d} left the repository");
        let r = s.delete(&url);
        assert_eq!(r.status, 202, "{d}: {}", r.text());
        assert_eq!(r.header("content-length"), Some("0"));
        gone(&s, &url, "BLOB_UNKNOWN");
        let r = s.delete(&url);
        assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".to_owned()));
    }
    // Nothing left of it: the name is unknown again, and a new push starts afresh.
    assert_eq!(s.get(&format!("/v2/{name}/tags/list")).status, 404);
    push_image(&s, name, "tagtest0", "management");

    // The pull workflow deletes by digest first.
    let r = s.delete(&format!("/v2/{name}/manifests/{md}"));
    assert_eq!(r.status, 202, "{}", r.text());
    gone(
        &s,
        &format!("/v2/{name}/manifests/tagtest0"),
        "MANIFEST_UNKNOWN",
    );
    for d in [&cfg_d, &layer_d] {
        let r = s.delete(&format!("/v2/{name}/blobs/{d}"));
        assert_eq!(r.status, 202, "{d}: {}", r.text());
    }
}

/// A blob `DELETE` acts on its repository only: the same blob waiting in, or linked by,
/// another repository stays there.
#[test]
fn blob_delete_is_scoped_to_its_repository() {
    let s = App::start();
    let blob = b"shared layer".as_slice();
    let d = digest_of(blob);
    for name in ["main/a", "main/b"] {
        push_blob(&s, name, blob);
    }
    let m = push_image(&s, "main/c", "v1", "scoped");
    let layer_d = digest_of(LAYER);
    let r = s.delete(&format!("/v2/main/a/blobs/{d}"));
    assert_eq!(r.status, 202, "{}", r.text());
    gone(&s, &format!("/v2/main/a/blobs/{d}"), "BLOB_UNKNOWN");
    assert_eq!(s.get(&format!("/v2/main/b/blobs/{d}")).body, blob);

    // Mounted into main/d from main/c's image: main/d's copy goes, the image keeps its own.
    let r = s.request(
        "POST",
        &format!("/v2/main/d/blobs/uploads/?mount={layer_d}&from=main/c"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.delete(&format!("/v2/main/d/blobs/{layer_d}")).status, 202);
    gone(&s, &format!("/v2/main/d/blobs/{layer_d}"), "BLOB_UNKNOWN");
    assert_eq!(s.get(&format!("/v2/main/c/blobs/{layer_d}")).body, LAYER);
    assert_eq!(s.get("/v2/main/c/manifests/v1").body, m);

    // A manifest waiting by digest is a blob of the repository too.
    let cfg = config("waiting");
    push_blob(&s, "main/e", &cfg);
    push_blob(&s, "main/e", LAYER);
    let waiting = image_manifest(&cfg);
    let wd = digest_of(&waiting);
    assert_eq!(put_manifest(&s, "main/e", &wd, &waiting).status, 201);
    assert_eq!(s.delete(&format!("/v2/main/e/blobs/{wd}")).status, 202);
    gone(
        &s,
        &format!("/v2/main/e/manifests/{wd}"),
        "MANIFEST_UNKNOWN",
    );

    let r = s.delete(&format!("/v2/main/a/blobs/{}", digest_of(b"never")));
    assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".to_owned()));
    let r = s.delete("/v2/main/a/blobs/sha256:nothex");
    assert_eq!((r.status, code(&r)), (400, "DIGEST_INVALID".to_owned()));
    // Product paths are read-only.
    let r = s.delete(&format!("/v2/prod/var/pb/blobs/{d}"));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET,HEAD")));
}

/// In a user repository, blobs a deleted image leaves stay reserved against the quota
/// while they wait (docs/access.md), and a blob `DELETE` gives their room back at once;
/// `.disk_usage` stays equal to a recount through it all.
#[test]
fn blob_delete_gives_quota_room_back() {
    let s = App::start_with(&[("DLREPO_USER_QUOTA", "1500")]);
    let root = s.root.path().to_owned();
    let consistent = || {
        assert_eq!(
            common::disk_usage(&root, "bob"),
            common::recount(&root, "bob")
        )
    };
    let (a, b, c) = (vec![b'a'; 600], vec![b'b'; 600], vec![b'c'; 600]);
    let cfg = b"{}".to_vec();
    for blob in [&a, &cfg] {
        push_blob(&s, "u/bob/main/one", blob);
    }
    let m = pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &cfg),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", &a)],
    }));
    assert_eq!(put_manifest(&s, "u/bob/main/one", "v1", &m).status, 201);
    consistent();
    let used = common::disk_usage(&root, "bob");
    let r = s.delete("/v2/u/bob/main/one/manifests/v1");
    assert_eq!(r.status, 202, "{}", r.text());
    consistent();
    assert!(common::disk_usage(&root, "bob") < used);

    // `a` and the config still wait in u/bob/main/one: room for one more layer, not two.
    push_blob(&s, "u/bob/main/two", &b);
    let upload = |blob: &[u8]| {
        s.request(
            "POST",
            &format!(
                "/v2/u/bob/main/two/blobs/uploads/?digest={}",
                digest_of(blob)
            ),
            &[],
            Some(blob),
        )
    };
    let r = upload(&c);
    assert_eq!((r.status, code(&r)), (403, "DENIED".to_owned()));
    let r = s.delete(&format!("/v2/u/bob/main/one/blobs/{}", digest_of(&a)));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(upload(&c).status, 201);
    consistent();
}

/// A manifest `DELETE` removes the job when the image was all it held, and the tag when
/// that leaves it empty; never another job, a job's other formats, a tag's flags, or
/// anything locked.
#[test]
fn manifest_delete_leaves_no_empty_job() {
    let s = App::start();
    let exists = |rel: &str| s.path(rel).exists();

    push_image(&s, "main/a", "t1", "alone");
    assert_eq!(s.delete("/v2/main/a/manifests/t1").status, 202);
    assert!(!exists("branches/main/t1"), "an empty tag is left");
    assert!(exists("branches/main"));
    let r = s.get("/branches/main/");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("\"t1\""), "{}", r.text());

    // Another job in the tag stays, and so does the tag.
    push_image(&s, "main/a", "t2", "a");
    push_image(&s, "main/b", "t2", "b");
    assert_eq!(s.delete("/v2/main/a/manifests/T2").status, 202);
    assert!(!exists("branches/main/t2/a"));
    assert!(exists("branches/main/t2/b/container"));
    assert_eq!(s.get("/v2/main/b/manifests/t2").status, 200);

    // A job with another format keeps it.
    s.upload_format("/branches/main/t3/c/docs/", &[("readme.txt", b"keep me")]);
    push_image(&s, "main/c", "t3", "c");
    assert_eq!(s.delete("/v2/main/c/manifests/t3").status, 202);
    assert!(!exists("branches/main/t3/c/container"));
    assert_eq!(
        s.get("/branches/main/t3/c/docs/readme.txt").body,
        b"keep me"
    );

    // A tag with a flag stays.
    push_image(&s, "main/d", "t4", "d");
    let r = s.send_json(
        "POST",
        "/branches/main/t4/",
        &json!({"tag": {"stable": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.delete("/v2/main/d/manifests/t4").status, 202);
    assert!(!exists("branches/main/t4/d"));
    assert!(exists("branches/main/t4"));

    // A locked job refuses, and nothing changes.
    push_image(&s, "main/e", "t5", "e");
    let r = s.send_json(
        "PUT",
        "/branches/main/t5/e/",
        &json!({"job": {"locked": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let before = common::snapshot(&s.path("branches"));
    let r = s.delete("/v2/main/e/manifests/t5");
    assert_eq!((r.status, code(&r)), (403, "DENIED".to_owned()));
    assert_eq!(common::snapshot(&s.path("branches")), before);

    // By digest: every tag of that manifest goes, in a user repository too, counted.
    let m = push_image(&s, "u/bob/main/f", "t6", "f");
    assert_eq!(put_manifest(&s, "u/bob/main/f", "t7", &m).status, 201);
    let r = s.delete(&format!("/v2/u/bob/main/f/manifests/{}", digest_of(&m)));
    assert_eq!(r.status, 202, "{}", r.text());
    for t in ["t6", "t7"] {
        assert!(!exists(&format!("users/bob/branches/main/{t}")), "{t}");
    }
    let root = s.root.path();
    assert_eq!(
        common::disk_usage(root, "bob"),
        common::recount(root, "bob")
    );
    // A push to the tag just emptied makes it again.
    push_image(&s, "main/a", "t1", "again");
    assert!(exists("branches/main/t1/a/container"));
    assert!(exists("branches/main/t1/.stamp") && exists("branches/main/t1/a/.stamp"));
}
