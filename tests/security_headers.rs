//! Serving uploads safely (spec/API.md Q52; docs/access.md "Serving artifacts safely"):
//! `Content-Disposition` names are quoted and encoded.

mod common;
use common::*;
use serde_json::json;

fn disposition(name: &str, encoded: &str) -> String {
    format!("attachment; filename=\"{name}\"; filename*=UTF-8''{encoded}")
}

#[test]
fn content_disposition_names_are_quoted_and_encoded() {
    let s = TestServer::start();
    // A single-file format: its bare URL redirects to the file and names it.
    s.upload_format(
        "/branches/b/t/j/one/",
        &[("a%3Bb%20%22c%22%5Cd%20%C3%A9.bin", b"x")],
    );
    let r = s.get("/branches/b/t/j/one");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("a;b _c__d _.bin", "a%3Bb%20%22c%22%5Cd%20%C3%A9.bin").as_str())
    );
    // The plain case keeps its name, now quoted.
    s.upload_format("/branches/b/t/j/two/", &[("only%20file.bin", b"y")]);
    assert_eq!(
        s.get("/branches/b/t/j/two").header("content-disposition"),
        Some(disposition("only file.bin", "only%20file.bin").as_str())
    );

    // Tar bundles are named after the job and tag...
    let job = "/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9/";
    s.upload_format(&format!("{job}f/"), &[("a.txt", b"a")]);
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9.tar");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("j _-t;x=_y__z.tar", "j%20%C3%A9-t%3Bx%3D%22y%22%5Cz.tar").as_str())
    );
    // ... or after the product metadata anyone who may write a job sets.
    let meta = json!({"job": {"product": "p\"q", "product_variant": "v;w",
        "product_branch": "1.0", "version": "1\\2"}});
    assert_eq!(s.send_json("PATCH", job, &meta).status, 200);
    let want = disposition("p_q-v;w-v1_2.tar", "p%22q-v%3Bw-v1%5C2.tar");
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9.tar");
    assert_eq!(r.header("content-disposition"), Some(want.as_str()));
    let r = s.get("/products/p%22q/v%3Bw/1.0/1%5C2.tar");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-disposition"), Some(want.as_str()));
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9/f.tar");
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("p_q-v;w-v1_2-f.tar", "p%22q-v%3Bw-v1%5C2-f.tar").as_str())
    );
}
