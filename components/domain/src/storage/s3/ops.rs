//! The object and bucket operations over any [`Space`]: get, list, and the
//! request helpers the others share.

use base64::Engine;
use serde_json::{Map, Value};

use crate::storage::datasets::S3_BUCKET;
use crate::storage::objects::ObjectStore;
use crate::storage::sigv4;

use super::errors::{S3Error, no_such_key, s3err};
use super::space::Space;
use super::xml::{http_date, s3_time, xml, xml_escape};
use super::{BUCKET, S3Request, S3Response};

pub(super) fn list_buckets() -> S3Response {
    xml(
        200,
        format!(
            "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>cloudtuner</ID><DisplayName>cloudtuner</DisplayName></Owner><Buckets><Bucket><Name>{BUCKET}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket><Bucket><Name>{S3_BUCKET}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"
        ),
    )
}

pub(super) fn list_objects(
    req: &S3Request,
    space: &dyn Space,
    prefix: &str,
) -> Result<S3Response, S3Error> {
    let max_keys: usize = match req.param("max-keys") {
        None => 1000,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| {
                s3err(
                    400,
                    "InvalidArgument",
                    "max-keys must be a non-negative integer",
                )
            })?
            .min(1000),
    };
    let delimiter = req.param("delimiter").filter(|d| !d.is_empty());
    let token = req.param("continuation-token");
    let start_after = req.param("start-after");
    let after = match &token {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3err(
                        400,
                        "InvalidArgument",
                        "The continuation token is not valid.",
                    )
                })?,
        ),
        None => start_after.clone(),
    };
    let url = req.param("encoding-type").as_deref() == Some("url");
    let enc = |s: &str| {
        if url {
            sigv4::aws_encode(s, false)
        } else {
            xml_escape(s)
        }
    };
    // Walk the sorted index, folding keys under a delimiter into common prefixes.
    let mut contents = String::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut count = 0;
    let mut last: Option<String> = None;
    let mut cursor = after.clone();
    let mut truncated = false;
    'outer: loop {
        let (page, more) = space.list(prefix, cursor.as_deref(), 1000)?;
        for (k, e) in &page {
            cursor = Some(k.clone());
            let folded = delimiter.as_ref().and_then(|d| {
                k[prefix.len()..]
                    .find(d.as_str())
                    .map(|i| k[..prefix.len() + i + d.len()].to_string())
            });
            if let Some(cp) = &folded
                && prefixes.last() == Some(cp)
            {
                continue;
            }
            if count == max_keys {
                truncated = true;
                break 'outer;
            }
            count += 1;
            last = Some(k.clone());
            match folded {
                Some(cp) => prefixes.push(cp),
                None => contents.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    enc(k),
                    s3_time(e.uploaded_ms),
                    xml_escape(&e.etag),
                    e.size
                )),
            }
        }
        if !more {
            break;
        }
    }
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(p)
            )
        })
        .collect();
    let next = match (&last, truncated) {
        (Some(l), true) => {
            // Resume after the whole common prefix, not inside it.
            let resume = prefixes
                .last()
                .filter(|p| l.starts_with(p.as_str()))
                .map(|p| format!("{p}\u{10FFFF}"))
                .unwrap_or_else(|| l.clone());
            format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(resume)
            )
        }
        _ => String::new(),
    };
    let body = format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix>{}{}<KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys>{}{}<IsTruncated>{truncated}</IsTruncated>{next}{contents}{common}</ListBucketResult>",
        space.name(),
        enc(prefix),
        delimiter
            .as_ref()
            .map(|d| format!("<Delimiter>{}</Delimiter>", enc(d)))
            .unwrap_or_default(),
        if url {
            "<EncodingType>url</EncodingType>"
        } else {
            ""
        },
        token
            .map(|t| format!("<ContinuationToken>{}</ContinuationToken>", xml_escape(&t)))
            .unwrap_or_default(),
        start_after
            .map(|s| format!("<StartAfter>{}</StartAfter>", enc(&s)))
            .unwrap_or_default(),
    );
    Ok(xml(200, body))
}

pub(super) fn get_object(
    req: &S3Request,
    store: &ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<S3Response, S3Error> {
    let m = store.head(bucket, key)?.ok_or_else(no_such_key)?;
    let mut headers = vec![
        ("etag".to_string(), m.etag.clone()),
        ("last-modified".to_string(), http_date(m.uploaded_ms)),
        ("content-type".to_string(), m.content_type.clone()),
        ("accept-ranges".to_string(), "bytes".to_string()),
    ];
    if !renders_inline_safely(&m.content_type) {
        headers.push(("content-disposition".to_string(), attachment(key)));
    }
    for (k, v) in &m.metadata {
        if let Some(v) = v.as_str() {
            headers.push((format!("x-amz-meta-{k}"), v.to_string()));
        }
    }
    let (status, start, end) = match req.header("range") {
        Some(r) => {
            let (s, e) = parse_range(r, m.size).ok_or_else(|| {
                s3err(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                )
            })?;
            headers.push((
                "content-range".into(),
                format!("bytes {s}-{}/{}", e - 1, m.size),
            ));
            (206, s, e)
        }
        None => (200, 0, m.size),
    };
    if req.method == "HEAD" {
        headers.push(("content-length".into(), (end - start).to_string()));
        return Ok(S3Response {
            status,
            headers,
            body: Vec::new(),
        });
    }
    let body = store.read(&m, start, end)?;
    Ok(S3Response {
        status,
        headers,
        body,
    })
}

/// Types a browser shows as they are, never as a document that runs:
/// everything else (HTML, SVG, XML, PDF, unknown) is served as a download.
const INLINE_SAFE: [&str; 8] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "application/json",
    "application/octet-stream",
    "binary/octet-stream",
];

/// Whether an object stored with `content_type` may be shown inline (the
/// essence only: parameters such as `charset` do not change how it renders).
pub(super) fn renders_inline_safely(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    INLINE_SAFE.contains(&essence.as_str())
}

/// `Content-Disposition: attachment` naming the key's last segment (RFC 6266
/// `filename*`, percent-encoded, so no quote or newline can break out).
pub(super) fn attachment(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    format!(
        "attachment; filename*=UTF-8''{}",
        sigv4::aws_encode(name, true)
    )
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → half-open range within `size`.
pub(super) fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, (b.parse::<u64>().ok()? + 1).min(size)),
    };
    (start < end && start < size).then_some((start, end))
}

pub(super) fn check_content_md5(req: &S3Request, body: &[u8]) -> Result<(), S3Error> {
    use md5::{Digest, Md5};
    if let Some(given) = req.header("content-md5") {
        let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        if given.trim() != actual {
            return Err(s3err(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(())
}

pub(super) fn content_type(req: &S3Request) -> String {
    req.header("content-type")
        .unwrap_or("binary/octet-stream")
        .to_string()
}

pub(super) fn metadata(req: &S3Request) -> Map<String, Value> {
    req.headers
        .iter()
        .filter_map(|(k, v)| {
            k.to_ascii_lowercase()
                .strip_prefix("x-amz-meta-")
                .map(|name| (name.to_string(), Value::String(v.clone())))
        })
        .collect()
}

pub(super) fn ok_headers(status: u16, headers: Vec<(String, String)>) -> S3Response {
    S3Response {
        status,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_http_rules() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn only_inert_types_render_inline() {
        for safe in ["image/png", "Text/Plain; charset=utf-8", "application/json"] {
            assert!(renders_inline_safely(safe), "{safe}");
        }
        for active in [
            "text/html",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "application/xhtml+xml",
            "application/pdf",
            "",
            "text/html; x=image/png",
        ] {
            assert!(!renders_inline_safely(active), "{active}");
        }
        assert_eq!(
            attachment("d/a \"b\"\r\n.html"),
            "attachment; filename*=UTF-8''a%20%22b%22%0D%0A.html"
        );
    }
}
