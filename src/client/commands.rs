//! What each client command sends and prints (spec/CLI.md §2). The printed lines are
//! dlrepo-cli's, byte for byte, where scripts read them: `key=value` with Python's `str()`
//! of the value, `Browse/Download:` lines, `-j` as `json.dumps(data, indent=2)`.

use super::listing;
use super::progress::Progress;
use super::remote::{Body, Remote};
use super::settings::Settings;
use super::transfer;
use super::upload::{self, Upload};
use super::{ClientCommand, ClientError, Globals, TagPath};
use crate::pyjson::{python_str, to_string_indented};
use serde_json::{Value, json};

type Params = Vec<(String, String)>;

/// `println!` (and `print!`) to standard output, through [`emit`]: an error where those
/// panic (a pipe closed early, `| head`; a full disk).
macro_rules! say {
    ($($arg:tt)*) => {
        emit(format!($($arg)*) + "\n")?
    };
}
macro_rules! say_raw {
    ($($arg:tt)*) => {
        emit(format!($($arg)*))?
    };
}

/// Writes `text` to standard output: as it is into a pipe or a file (scripts read
/// dlrepo-cli's bytes), with control characters as `?` on a terminal, since values any
/// writer may set (a tag's description, a job's metadata) could hold escape sequences.
fn emit(text: String) -> Result<(), ClientError> {
    use std::io::{IsTerminal as _, Write as _};
    let mut out = std::io::stdout().lock();
    let text = match out.is_terminal() {
        true => super::printable(&text),
        false => text,
    };
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

fn stdout_error(e: std::io::Error) -> ClientError {
    ClientError::Local(format!("standard output: {e}"))
}

// One arm per command, each a line or a call: the table reads best in one place.
pub fn run(g: &Globals, s: &Settings, command: ClientCommand) -> Result<(), ClientError> {
    let remote = Remote::new(&s.base, s.auth.clone());
    let out = Output { g, remote: &remote };
    let r = &remote;
    use ClientCommand as C;
    match command {
        C::Upload { at, paths, resume } => {
            let files = upload::collect(&paths)?;
            upload(g, r, &at.url(), &files, resume)
        }
        C::Get { at, target } => get(g, r, &at.url(), &target),
        C::Download { path, target } => download(g, r, &path, &target),
        C::Login => super::login::login(r),
        C::Logout => super::login::logout(r),
        C::GetInfo(at) => out.show(&at.url(), None, |d| job_lines(&d["job"])),
        C::SetInfo { at, info } => set_info(s, r, &at.url(), info),
        C::Lock { at, job, unlock } => lock(r, &at, job.as_deref(), unlock),
        C::GetDescription(at) => out.show(&at.url(), None, |d| match &d["tag"]["description"] {
            Value::Null => String::new(),
            text => format!("{}\n", python_str(text)),
        }),
        C::SetDescription { at, description } => {
            set_tag(r, &at, json!({ "description": description }))
        }
        C::Branches => out.show("branches/", None, |d| branches_text(&d, g.verbose)),
        C::Tags {
            branch,
            released_only,
        } => {
            let params: Params = match released_only {
                true => vec![("released".into(), "1".into())],
                false => Vec::new(),
            };
            out.show(&format!("branches/{branch}/"), Some(params), |d| {
                names(&d["branch"]["tags"])
            })
        }
        C::Jobs { at, filters } => {
            out.show(&at.url(), Some(dict(filters)), |d| names(&d["tag"]["jobs"]))
        }
        C::Status(at) => out.show(&at.url(), None, |d| status_lines(&d["tag"])),
        C::Release { at, unset } => set_tag(r, &at, json!({ "released": !unset })),
        C::Stable { at, unset } => set_tag(r, &at, json!({ "stable": !unset })),
        C::Internal { at, unset } => {
            let body = json!({ "job": { "internal": !unset } });
            r.call("PUT", &at.url(), Body::Json(&body))
        }
        C::Delete {
            branch,
            tag,
            job,
            format,
        } => {
            let mut url = format!("branches/{branch}/");
            for part in [tag, job, format].into_iter().flatten() {
                url = format!("{url}{part}/");
            }
            delete(r, &url)
        }
        C::Flush => flush(s, r),
        C::CleanupPolicy {
            branch,
            max_daily,
            max_released,
        } => cleanup_policy(g, r, &branch, max_daily, max_released),
    }
}

/// `get-info`: `key=value` per metadata key, lists joined with spaces.
fn job_lines(job: &Value) -> String {
    let mut lines = String::new();
    for (k, v) in object(job) {
        let v = match v {
            Value::Array(items) => items.iter().map(python_str).collect::<Vec<_>>().join(" "),
            v => python_str(v),
        };
        lines.push_str(&format!("{k}={v}\n"));
    }
    lines
}

/// `status`: the tag's flags as Python prints them.
fn status_lines(tag: &Value) -> String {
    let publish = tag.get("publish_status").map(python_str);
    format!(
        "released={}\nstable={}\nlocked={}\npublish_status={}\n",
        python_str(&tag["released"]),
        python_str(&tag["stable"]),
        python_str(&tag["locked"]),
        publish.unwrap_or_default()
    )
}

/// `set-info`, then the product version's URL once the job names one.
fn set_info(
    s: &Settings,
    r: &Remote,
    url: &str,
    info: Vec<(String, String)>,
) -> Result<(), ClientError> {
    let fields: serde_json::Map<String, Value> = info
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    r.call("PATCH", url, Body::Json(&json!({ "job": fields })))?;
    let data = r.get_json(url, None)?;
    let job = &data["job"];
    let keys = crate::model::PRODUCT_KEYS;
    if keys.iter().all(|k| job.get(k).is_some()) {
        let parts: Vec<String> = keys.iter().map(|k| python_str(&job[k])).collect();
        let url = format!("{}products/{}/", s.base, parts.join("/"));
        say!("Browse/Download: {}", url.to_lowercase());
    }
    Ok(())
}

/// `lock [-u]`: a job is locked with PUT and unlocked with POST, a tag with POST (as
/// dlrepo-cli sends them).
fn lock(r: &Remote, at: &TagPath, job: Option<&str>, unlock: bool) -> Result<(), ClientError> {
    let locked = json!({ "locked": !unlock });
    match job {
        Some(job) => {
            let url = format!("{}{job}/", at.url());
            let method = if unlock { "POST" } else { "PUT" };
            r.call(method, &url, Body::Json(&json!({ "job": locked })))
        }
        None => set_tag(r, at, locked),
    }
}

/// POST `{"tag": fields}` to the tag.
fn set_tag(r: &Remote, at: &TagPath, fields: Value) -> Result<(), ClientError> {
    r.call("POST", &at.url(), Body::Json(&json!({ "tag": fields })))
}

/// `flush`: every branch of a user space, refused elsewhere.
fn flush(s: &Settings, r: &Remote) -> Result<(), ClientError> {
    if !s.prefix.contains('~') {
        return Err(ClientError::Local(format!(
            "{} is not a user space, refusing to flush",
            s.base
        )));
    }
    let data = r.get_json("/branches/", None)?;
    say!("deleting all branches in {}", s.base);
    for b in array(&data["branches"]) {
        delete(r, &format!("branches/{}/", python_str(&b["name"])))?;
    }
    Ok(())
}

/// `cleanup-policy`: sets the limits given, or prints the policy when none is.
fn cleanup_policy(
    g: &Globals,
    r: &Remote,
    branch: &str,
    max_daily: Option<i64>,
    max_released: Option<i64>,
) -> Result<(), ClientError> {
    let url = format!("branches/{branch}/");
    let mut policy = serde_json::Map::new();
    if let Some(n) = max_daily {
        policy.insert("max_daily_tags".into(), n.into());
    }
    if let Some(n) = max_released {
        policy.insert("max_released_tags".into(), n.into());
    }
    if !policy.is_empty() {
        return r.call("POST", &url, Body::Json(&json!({ "branch": policy })));
    }
    let data = r.get_json(&url, None)?;
    if g.raw_json {
        say!("{}", to_string_indented(&data));
        return Ok(());
    }
    for (k, v) in object(&data["branch"]["cleanup_policy"]) {
        say!("{k}={}", python_str(v));
    }
    Ok(())
}

/// How listing commands print: `-j` gives the JSON, else a `URL:` line on stderr (unless
/// `--no-print-url`) and the text.
struct Output<'a> {
    g: &'a Globals,
    remote: &'a Remote,
}

impl Output<'_> {
    fn show(
        &self,
        url: &str,
        params: Option<Params>,
        text: impl FnOnce(Value) -> String,
    ) -> Result<(), ClientError> {
        let data = self.remote.get_json(url, params.as_deref())?;
        if self.g.raw_json {
            say!("{}", to_string_indented(&data));
            return Ok(());
        }
        if !self.g.no_print_url {
            eprintln!("URL: {}", self.remote.url(url, None));
        }
        say_raw!("{}", text(data));
        Ok(())
    }
}

fn object(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flatten()
}

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// One `name` per line.
fn names(list: &Value) -> String {
    array(list)
        .map(|item| format!("{}\n", python_str(&item["name"])))
        .collect()
}

/// A Python dict of `PARAM=VALUE` arguments: the last value of a key wins, in the place
/// of its first.
fn dict(pairs: Params) -> Params {
    let mut out: Params = Vec::new();
    for (k, v) in pairs {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// `branches`, and `branches -v` with dlrepo-cli's columns.
fn branches_text(data: &Value, verbose: bool) -> String {
    let list: Vec<&Value> = array(&data["branches"]).collect();
    if !verbose {
        return names(&data["branches"]);
    }
    let with_max = |b: &Value, count: &str, max: &str| {
        let mut s = python_str(&b[count]);
        if crate::pyjson::is_truthy(&b[max]) {
            s = format!("{s}/{}", python_str(&b[max]));
        }
        s
    };
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|b| {
            [
                format!("{}:", python_str(&b["name"])),
                with_max(b, "released_tags", "max_released_tags"),
                with_max(b, "daily_tags", "max_daily_tags"),
                python_str(&b["locked_tags"]),
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    rows.iter()
        .map(|[name, released, daily, locked]| {
            format!("{name:<w0$} released {released:>w1$} daily {daily:>w2$} locked {locked}\n")
        })
        .collect()
}

fn delete(r: &Remote, url: &str) -> Result<(), ClientError> {
    let mut reply = r.send("DELETE", &r.url(url, Some(&[])), &[], Body::None)?;
    std::io::copy(&mut reply.body.as_reader(), &mut std::io::sink())
        .map(drop)
        .map_err(|e| ClientError::Local(e.to_string()))
}

/// `upload`: `format_url` ends with `/`.
fn upload(
    g: &Globals,
    r: &Remote,
    format_url: &str,
    files: &[Upload],
    resume: bool,
) -> Result<(), ClientError> {
    let bytes = files.iter().map(|f| f.size).sum();
    let progress = Progress::new(g.quiet, files.len() as u64, bytes);
    transfer::in_parallel(files, usize::from(g.parallel), |file| {
        let url = r.url(&format!("{format_url}{}", file.rel), None);
        upload::upload_one(r, &url, file, resume, &progress)
    })?;
    progress.finish("uploaded");
    // Clears the format's dirty flag: the upload is complete.
    r.call("PATCH", format_url, Body::Empty)?;
    let browse = format!("{}{format_url}", r.base());
    say!("Browse/Download: {}", browse.to_lowercase());
    Ok(())
}

fn get(
    g: &Globals,
    r: &Remote,
    format_url: &str,
    target: &std::path::Path,
) -> Result<(), ClientError> {
    // Where an alias (`latest`) led: the files come from that tag, even if the alias
    // moves on while they download.
    let (dir, format) = format_listing(r, &r.url(format_url, None))?;
    let files = format_files(format.files, &dir, "")?;
    fetch_all(g, r, &files, target)
}

/// The directory URL a listing came from, after its redirects (an alias's target), ending
/// in `/` as the names under it need.
fn listed_dir(reply: &super::remote::Reply) -> String {
    let mut dir = reply.url.clone();
    if !dir.ends_with('/') {
        dir.push('/');
    }
    dir
}

/// The format listed at `url`: where it was listed from (see [`listed_dir`]), and its
/// files.
fn format_listing(r: &Remote, url: &str) -> Result<(String, listing::Files), ClientError> {
    let reply = r.send("GET", url, &[], Body::None)?;
    let dir = listed_dir(&reply);
    match listing::read(reply)?.artifact_format {
        Some(format) => Ok((dir, format)),
        None => Err(ClientError::Local(format!("{dir} is not a format"))),
    }
}

/// `download PATH DIR`: whatever PATH names, after its redirects (aliases).
fn download(
    g: &Globals,
    r: &Remote,
    path: &str,
    target: &std::path::Path,
) -> Result<(), ClientError> {
    let url = r.url(&format!("{}/", path.trim_matches('/')), None);
    let reply = r.send("GET", &url, &[], Body::None)?;
    let dir = listed_dir(&reply);
    let entity = listing::read(reply)?;
    let files = match (entity.job.or(entity.version), entity.artifact_format) {
        (Some(holder), _) => {
            let mut files = Vec::new();
            for name in holder.artifact_formats {
                if name.contains('/') || !transfer::safe_rel(&name) {
                    return Err(ClientError::Local(format!(
                        "the server listed a format {name:?}, which is not a directory name"
                    )));
                }
                let (format_dir, format) =
                    format_listing(r, &Remote::url_under(&dir, &format!("{name}/")))?;
                // The bound is on the whole download, not on each of its listings.
                if files.len() + format.files.len() > listing::MAX_NAMES {
                    return Err(ClientError::Local(format!(
                        "{url}: more than {} files",
                        listing::MAX_NAMES
                    )));
                }
                files.extend(format_files(
                    format.files,
                    &format_dir,
                    &format!("{name}/"),
                )?);
            }
            files
        }
        (None, Some(format)) => format_files(format.files, &dir, "")?,
        (None, None) => {
            return Err(ClientError::Local(format!(
                "{url} is not a job, a format or a product version"
            )));
        }
    };
    fetch_all(g, r, &files, target)
}

/// The files `names` of a format: their URL (under `dir`) and where they go (`prefix` and
/// their name), refusing names that would leave the target directory.
fn format_files(
    names: Vec<String>,
    dir: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, ClientError> {
    names
        .into_iter()
        .map(|name| {
            let rel = format!("{prefix}{name}");
            if !transfer::safe_rel(&rel) {
                return Err(ClientError::Local(format!(
                    "the server listed {name:?}, which is not a path inside the target directory"
                )));
            }
            Ok((Remote::url_under(dir, &name), rel))
        })
        .collect()
}

/// Downloads `(url, relative path)` pairs under `target`, in parallel.
fn fetch_all(
    g: &Globals,
    r: &Remote,
    files: &[(String, String)],
    target: &std::path::Path,
) -> Result<(), ClientError> {
    transfer::check_names(files.iter().map(|(_, rel)| rel.as_str()))?;
    let progress = Progress::new(g.quiet, files.len() as u64, 0);
    transfer::in_parallel(files, usize::from(g.parallel), |(url, rel)| {
        transfer::download_one(r, url, target, rel, &progress)
    })?;
    transfer::tidy(target);
    progress.finish("downloaded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_branches_align_like_dlrepo_cli() {
        let data = json!({"branches": [
            {"name": "main", "released_tags": 3, "daily_tags": 12, "locked_tags": 1,
             "max_released_tags": 10, "max_daily_tags": 0},
            {"name": "feature-x", "released_tags": 0, "daily_tags": 2, "locked_tags": 0,
             "max_released_tags": 0, "max_daily_tags": 0},
        ]});
        assert_eq!(
            branches_text(&data, true),
            "main:      released 3/10 daily 12 locked 1\n\
             feature-x: released    0 daily  2 locked 0\n"
        );
        assert_eq!(branches_text(&data, false), "main\nfeature-x\n");
    }

    #[test]
    fn repeated_filters_keep_the_last_value() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "3".to_owned()),
        ];
        assert_eq!(
            dict(pairs),
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
    }
}
