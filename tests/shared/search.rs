//! Searching a server (tests/router/search.rs, tests/blackbox/search.rs).

use super::{Client, Res};
use std::time::{Duration, Instant};

/// `q` as it goes in a query string.
pub fn enc(q: &str) -> String {
    percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `GET /search?q=...{extra}` with `headers`, once the index is complete.
pub fn search_as(s: &impl Client, q: &str, extra: &str, headers: &[(&str, &str)]) -> Res {
    let began = Instant::now();
    loop {
        let r = s.request(
            "GET",
            &format!("/search?q={}{extra}", enc(q)),
            headers,
            None,
        );
        if r.status != 200
            || r.json()["complete"] == true
            || began.elapsed() > Duration::from_secs(20)
        {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The result URLs of `q`, in order.
pub fn urls(s: &impl Client, q: &str) -> Vec<String> {
    let r = search_as(s, q, "", &[]);
    assert_eq!(r.status, 200, "{q}: {}", r.text());
    url_list(&r)
}

pub fn url_list(r: &Res) -> Vec<String> {
    r.json()["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| h["url"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
