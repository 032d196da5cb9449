//! Formats and artifacts (spec/API.md §3.8–3.9, §5.2): method rules, listings,
//! finalisation, delete, tar and `.sha256` views and downloads; uploads are `uploads.rs`.

use crate::http::caching::Freshness;
use crate::http::context::Ctx;
use crate::http::download::Download;
use crate::http::reply::{ApiError, ApiResult, json, json_of, ok, redirect, text};
use crate::http::route::{FormatParent, FormatPart};
use crate::http::{shapes, views};
use crate::model::{Alias, FormatRef, JobRef, Name, RelPath, RelPathError, TagRef};
use crate::storage::apt::AptIndex;
use crate::storage::page_info::DirPage;
use crate::storage::rpm::RpmIndex;
use crate::storage::{Artifact, Repo, StoreError, Visibility};
use axum::http::{HeaderValue, Method, header};

fn is_alias(parent: &FormatParent) -> bool {
    match parent {
        FormatParent::Job { tag, .. } => Alias::parse(tag.as_str()).is_some(),
        FormatParent::Version { version, .. } => Alias::parse(version.as_str()).is_some(),
    }
}

/// Resolves the format's parent. Aliases resolve for reads; writes name the tag literally.
fn resolve_in(
    r: &Repo,
    parent: FormatParent,
    format: Name,
    alias_ok: bool,
    acl: &Visibility,
) -> Result<FormatRef, StoreError> {
    Ok(match parent {
        FormatParent::Job { branch, tag, job } => {
            let tag = if alias_ok {
                r.resolve_tag(&branch, tag.as_str(), true, acl)?
            } else {
                TagRef { branch, tag }
            };
            FormatRef::Job {
                job: JobRef { tag, job },
                format,
            }
        }
        FormatParent::Version {
            scope,
            path,
            version,
        } => FormatRef::Version {
            version: r.resolve_version(&scope, &path, version.as_str(), alias_ok, acl)?,
            format,
        },
    })
}

/// Resolves the format, then runs `op` on it, in one trip to the blocking pool.
async fn with_format<T, F>(
    ctx: &Ctx,
    parent: FormatParent,
    format: Name,
    op: F,
) -> Result<(FormatRef, T), ApiError>
where
    F: FnOnce(&Repo, &FormatRef) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let alias_ok = ctx.is_read();
    let acl = ctx.acl.clone();
    Ok(ctx
        .app
        .repo
        .run(move |r| {
            let f = resolve_in(r, parent, format, alias_ok, &acl)?;
            let out = op(r, &f)?;
            Ok((f, out))
        })
        .await?)
}

async fn resolve(ctx: &Ctx, parent: FormatParent, format: Name) -> Result<FormatRef, ApiError> {
    Ok(with_format(ctx, parent, format, |_, _| Ok(())).await?.0)
}

pub async fn format(
    ctx: &mut Ctx,
    parent: FormatParent,
    format: Name,
    part: FormatPart,
) -> ApiResult {
    if ctx.is_read() {
        return format_read(ctx, parent, format, part).await;
    }
    format_write(ctx, parent, format, part).await
}

/// PUT an artifact, PATCH (finalise) or DELETE a format; 405 for any other write.
async fn format_write(
    ctx: &mut Ctx,
    parent: FormatParent,
    format: Name,
    part: FormatPart,
) -> ApiResult {
    let alias = is_alias(&parent);
    let product = matches!(parent, FormatParent::Version { .. });
    match (&part, ctx.method.clone()) {
        (FormatPart::Artifact(rel), Method::PUT) => {
            if product {
                return Err(ApiError::BadRequest(
                    "Uploading products is not supported".into(),
                ));
            }
            if alias {
                return Err(ApiError::MethodNotAllowed("GET"));
            }
            let rel = RelPath::parse(rel).map_err(bad_relpath)?;
            let f = resolve(ctx, parent, format).await?;
            super::uploads::upload(ctx, f, rel).await
        }
        (FormatPart::Dir, Method::PATCH) => {
            if product || alias {
                return Err(ApiError::MethodNotAllowed("GET"));
            }
            with_format(ctx, parent, format, |r, f| r.finalize_format(f)).await?;
            ok()
        }
        (FormatPart::Dir, Method::DELETE) => {
            if product {
                return Err(ApiError::BadRequest(
                    "Deleting product formats is not supported".into(),
                ));
            }
            // spec/API.md Q10: never delete through an alias.
            if alias {
                return Err(ApiError::MethodNotAllowed("GET"));
            }
            with_format(ctx, parent, format, |r, f| r.delete_format(f)).await?;
            ok()
        }
        (FormatPart::Dir, _) => Err(ApiError::MethodNotAllowed("DELETE,GET,HEAD,PATCH")),
        (FormatPart::Artifact(_), _) => Err(ApiError::MethodNotAllowed("GET,HEAD,PUT")),
        _ => Err(ApiError::MethodNotAllowed("GET,HEAD")),
    }
}

/// GET and HEAD of a format, its bundles and its artifacts.
async fn format_read(ctx: &Ctx, parent: FormatParent, format: Name, part: FormatPart) -> ApiResult {
    // HEAD with a Digest asks "do you have this blob?", whatever the path (spec/API.md §3.9).
    if let FormatPart::Artifact(rel) = &part
        && ctx.method == Method::HEAD
        && let Some(raw) = ctx.headers.get("digest")
    {
        RelPath::parse(rel.trim_end_matches('/')).map_err(bad_relpath)?;
        return super::uploads::head_digest(ctx, raw.to_str().ok(), &parent).await;
    }
    if let FormatPart::Dir = part {
        if ctx.method == Method::GET && wants_details(ctx) {
            return format_details(ctx, parent, format).await;
        }
        if ctx.page() {
            return dir_view(ctx, parent, format, None).await;
        }
        return format_dir(ctx, parent, format).await;
    }
    if let FormatPart::Artifact(rel) = part {
        return artifact(ctx, parent, format, &rel).await;
    }
    match part {
        FormatPart::Bare => format_bare(ctx, parent, format).await,
        FormatPart::Tar(_) => format_tar(ctx, parent, format).await,
        FormatPart::Sha256 => {
            // The canonical check comes first: a non-canonical URL redirects even when the
            // format is missing, as it always did.
            let acl = ctx.acl.clone();
            let (f, sums) =
                with_format(
                    ctx,
                    parent,
                    format,
                    move |r, f| Ok(r.format_sha256(f, &acl)),
                )
                .await?;
            if let Some(r) = ctx.canonical(&format!("{}.sha256", f.url().trim_end_matches('/'))) {
                return r;
            }
            text(sums?)
        }
        FormatPart::Dir | FormatPart::Artifact(_) => Err(ApiError::NotFound),
    }
}

fn bad_relpath(e: RelPathError) -> ApiError {
    ApiError::BadRequest(e.0)
}

/// `{format}/`: its listing, or for HEAD only whether it is there and finished.
async fn format_dir(ctx: &Ctx, parent: FormatParent, format: Name) -> ApiResult {
    if ctx.method == Method::HEAD {
        let (f, dirty) = with_format(ctx, parent, format, |r, f| r.format_dirty(f)).await?;
        if dirty {
            return Err(ApiError::NotFound);
        }
        if let Some(r) = ctx.canonical(&f.url()) {
            return r;
        }
        return ok();
    }
    let acl = ctx.acl.clone();
    let (f, info) = with_format(ctx, parent, format, move |r, f| r.format_info(f, &acl)).await?;
    if let Some(r) = ctx.canonical(&f.url()) {
        return r;
    }
    json_of("artifact_format", &info)
}

/// The media type that asks a format for [`format_details`] without `?details`.
const DETAILS_TYPE: &str = "application/vnd.arbor.artifacts+json";

fn wants_details(ctx: &Ctx) -> bool {
    let accepts = ctx
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(DETAILS_TYPE));
    accepts || ctx.query_pairs().iter().any(|(k, _)| k == "details")
}

/// `GET {format}/?details`: the format's JSON with size, digest, content type and mtime per
/// file.
async fn format_details(ctx: &Ctx, parent: FormatParent, format: Name) -> ApiResult {
    let acl = ctx.acl.clone();
    let (f, (info, files)) =
        with_format(ctx, parent, format, move |r, f| r.format_details(f, &acl)).await?;
    if let Some(r) = ctx.canonical(&f.url()) {
        // The redirect keeps asking for the details.
        return r.map(|mut res| {
            let loc = res.headers().get(header::LOCATION).cloned();
            if let Some(v) = loc
                .and_then(|l| l.to_str().ok().map(|l| format!("{l}?details")))
                .and_then(|l| HeaderValue::from_str(&l).ok())
            {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        });
    }
    Ok(json(&shapes::format_details(&info, &files)))
}

/// `{format}` without a slash: to its only file, else to the format dir.
async fn format_bare(ctx: &Ctx, parent: FormatParent, format: Name) -> ApiResult {
    let acl = ctx.acl.clone();
    let (f, single) = with_format(ctx, parent, format, move |r, f| {
        r.format_single_file(f, &acl)
    })
    .await?;
    let url = f.url();
    Ok(match single {
        Some(file) => {
            let mut res = redirect(&format!("{url}{file}"));
            let base = file.rsplit('/').next().unwrap_or(&file);
            res.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                crate::http::security::attachment(base),
            );
            res
        }
        None => redirect(&url),
    })
}

async fn format_tar(ctx: &Ctx, parent: FormatParent, format: Name) -> ApiResult {
    let (f, dirty) = with_format(ctx, parent, format, |r, f| r.format_dirty(f)).await?;
    if ctx.method == Method::HEAD && dirty {
        return Err(ApiError::NotFound);
    }
    if let Some(r) = ctx.canonical(&ctx.bundle_url(&f.url())) {
        return r;
    }
    let acl = ctx.acl.clone();
    let plan = ctx.app.repo.run(move |r| r.format_tar(&f, &acl)).await?;
    Ok(ctx.tar(plan))
}

/// The browser view of a format dir or a directory below it: its `index.html` when it has
/// one, else an autoindex (spec/API.md §3.8–3.9).
async fn dir_view(
    ctx: &Ctx,
    parent: FormatParent,
    format: Name,
    rel: Option<RelPath>,
) -> ApiResult {
    let (lookup, acl) = (rel.clone(), ctx.acl.clone());
    let (f, page) = with_format(ctx, parent, format, move |r, f| {
        r.dir_page(f, lookup.as_ref(), &acl)
    })
    .await?;
    let canonical = match &rel {
        Some(rel) => format!("{}{rel}/", f.url()),
        None => f.url(),
    };
    if let Some(r) = ctx.canonical(&canonical) {
        return r;
    }
    match page {
        DirPage::Index(file) => Ok(download(ctx, "index.html", &canonical).respond(file)),
        DirPage::Listing(entries, repos) => {
            let root = rel.is_none().then(|| f.name().as_str());
            let signed = ctx.app.signer.is_some();
            let base = ctx.public_base();
            let snippets = views::repo_snippets(repos, &base, &canonical, signed);
            let fetch = match rel {
                None => views::fetch_snippets(&base, &views::Fetchable::format(&f)),
                Some(_) => Vec::new(),
            };
            let heading = match &rel {
                Some(rel) => format!("{}/{rel}/", f.name()),
                None => format!("{}/", f.name()),
            };
            views::autoindex_page(ctx.chrome(), heading, root, &entries, fetch, snippets)
        }
    }
}

async fn artifact(ctx: &Ctx, parent: FormatParent, format: Name, raw: &str) -> ApiResult {
    let is_dir_url = raw.ends_with('/');
    let rel = RelPath::parse(raw.trim_end_matches('/')).map_err(bad_relpath)?;
    if is_dir_url && ctx.page() {
        return dir_view(ctx, parent, format, Some(rel)).await;
    }
    let (lookup, acl) = (rel.clone(), ctx.acl.clone());
    // A small file is read in the same trip to the blocking pool as it is opened.
    let preload = if ctx.method == Method::GET && ctx.app.config.x_sendfile_header.is_none() {
        PRELOAD_MAX
    } else {
        0
    };
    let opened = with_format(ctx, parent.clone(), format.clone(), move |r, f| {
        r.open_artifact(f, &lookup, &acl)?.preload(preload)
    })
    .await;
    let (f, found) = match (opened, AptIndex::parse(rel.as_str())) {
        // No such file: a flat APT repository's index, when the name is one.
        (Err(ApiError::NotFound), Some(which)) if !is_dir_url => {
            let acl = ctx.acl.clone();
            let (f, body) = with_format(ctx, parent, format, move |r, f| {
                every_file(r, f, &acl)?;
                r.apt_index(f, which)
            })
            .await?;
            return super::apt::respond(ctx, &f, which, body);
        }
        // Likewise a dnf repository's `repodata/` file.
        (Err(ApiError::NotFound), _) if !is_dir_url && RpmIndex::parse(rel.as_str()).is_some() => {
            let which = RpmIndex::parse(rel.as_str()).ok_or(ApiError::NotFound)?;
            let acl = ctx.acl.clone();
            let (f, body) = with_format(ctx, parent, format, move |r, f| {
                every_file(r, f, &acl)?;
                r.rpm_index(f, which)
            })
            .await?;
            return super::rpm::respond(ctx, &f, which, body);
        }
        (opened, _) => opened?,
    };
    let canonical = format!("{}{}", f.url(), rel);
    match found {
        // Directory listings are HTML only; the JSON API has none (spec/API.md §3.9).
        Artifact::Dir if ctx.page() => Ok(redirect(&format!("{canonical}/"))),
        Artifact::Dir => Err(ApiError::NotFound),
        _ if is_dir_url => Err(ApiError::NotFound),
        Artifact::Sha256Line(line) => {
            if let Some(r) = ctx.canonical(&canonical) {
                return r;
            }
            text(line)
        }
        Artifact::File(file) => {
            if let Some(r) = ctx.canonical(&canonical) {
                return r;
            }
            // HEAD without Digest answers what GET would, without the body (dlrepo sent
            // Digest and Content-Length only, spec/API.md §3.9).
            Ok(download(ctx, rel.basename(), &canonical).respond(file))
        }
    }
}

/// A package index arbor generates names every file of the format: a caller who may not
/// read them all gets the 404 of a format without one.
fn every_file(r: &Repo, f: &FormatRef, acl: &Visibility) -> Result<(), StoreError> {
    match r.reads_every_file(f, acl)? {
        true => Ok(()),
        false => Err(StoreError::NotFound),
    }
}

/// The largest file a GET reads whole as it opens it: a 4 KiB download went from two trips to
/// the blocking pool to one. Larger files stream (or go by `sendfile`); a conditional GET
/// answered 304 reads at most this much in vain.
const PRELOAD_MAX: u64 = 64 << 10;

/// How an artifact at `url` is sent as `name` (spec/API.md §5.2).
fn download<'a>(ctx: &'a Ctx, name: &'a str, url: &str) -> Download<'a> {
    Download {
        method: &ctx.method,
        headers: &ctx.headers,
        name,
        chunk_size: ctx.app.repo.chunk_size(),
        x_sendfile: ctx.app.config.x_sendfile_header.as_deref(),
        digest_header: "digest",
        content_type: None,
        conn: ctx.conn.as_ref(),
        inline: ctx.app.config.serves_inline(url),
        freshness: Freshness::Revalidate,
    }
}
