//! The operations `aws s3 sync`, `aws s3 rm --recursive` and resuming clients
//! send besides get/put: DeleteObjects, CopyObject and ListParts.

use crate::storage::objects::ObjectStore;
use crate::storage::sigv4;

use super::auth::Access;
use super::errors::{S3Error, no_such_key, s3err};
use super::ops::{check_content_md5, content_type, metadata};
use super::space::Space;
use super::xml::{parse_delete, s3_time, xml, xml_escape};
use super::{Context, S3Request, S3Response};

const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// `POST /<bucket>?delete`: each key deleted if the caller may, an `<Error>`
/// for each it may not (as S3 answers: 200 with per-key results).
pub(super) fn delete_objects(
    req: &S3Request,
    space: &dyn Space,
    store: &ObjectStore,
    body: &[u8],
) -> Result<S3Response, S3Error> {
    check_content_md5(req, body)?;
    let (keys, quiet) = parse_delete(body)?;
    let mut out = String::new();
    for key in keys {
        let result = space
            .authorize(&key, Access::Write)
            .and_then(|()| space.locate(&key))
            .and_then(|(b, k)| Ok(store.delete(&b, &k)?));
        match result {
            // A key that is not there is "deleted", as on S3.
            Ok(()) => {
                if !quiet {
                    out.push_str(&format!(
                        "<Deleted><Key>{}</Key></Deleted>",
                        xml_escape(&key)
                    ));
                }
            }
            Err(e) if e.code == "NoSuchKey" => {
                if !quiet {
                    out.push_str(&format!(
                        "<Deleted><Key>{}</Key></Deleted>",
                        xml_escape(&key)
                    ));
                }
            }
            Err(e) => out.push_str(&format!(
                "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                xml_escape(&key),
                e.code,
                xml_escape(&e.message)
            )),
        }
    }
    Ok(xml(200, format!("<DeleteResult {NS}>{out}</DeleteResult>")))
}

/// `x-amz-copy-source: [/]<bucket>/<key>` (percent-encoded) → (bucket, key).
fn copy_source(header: &str) -> Result<(String, String), S3Error> {
    let raw = header.split('?').next().unwrap_or("");
    let decoded = sigv4::percent_decode(raw.trim_start_matches('/'));
    decoded
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty() && !k.split('/').any(|s| s == ".."))
        .map(|(b, k)| (b.to_string(), k.to_string()))
        .ok_or_else(|| {
            s3err(
                400,
                "InvalidArgument",
                "x-amz-copy-source must be <bucket>/<key>",
            )
        })
}

/// `PUT` with `x-amz-copy-source`: a copy within the same bucket, checked as
/// a read of the source and a write of the destination.
pub(super) fn copy_object(
    ctx: &Context,
    req: &S3Request,
    space: &dyn Space,
    store: &ObjectStore,
    key: &str,
) -> Result<S3Response, S3Error> {
    let (bucket, source_key) = copy_source(req.header("x-amz-copy-source").unwrap_or(""))?;
    if bucket != space.name() {
        return Err(s3err(
            400,
            "InvalidRequest",
            format!(
                "Copies stay within a bucket: copy from {:?} to {:?}.",
                space.name(),
                space.name()
            ),
        ));
    }
    space.authorize(&source_key, Access::Read)?;
    let (sb, sk) = space.locate(&source_key)?;
    let source = store.head(&sb, &sk)?.ok_or_else(no_such_key)?;
    space.admit(key, Some(source.size), 0)?;
    let (db, dk) = space.locate(key)?;
    let replace = req
        .header("x-amz-metadata-directive")
        .is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"))
        .then(|| (content_type(req), metadata(req)));
    let hold = space.reserve(key, source.size)?;
    let copied = store.copy(&source, &db, &dk, replace, ctx.now_ms);
    space.release(hold);
    let m = copied?;
    space.stored(key, &m);
    Ok(xml(
        200,
        format!(
            "<CopyObjectResult {NS}><LastModified>{}</LastModified><ETag>{}</ETag></CopyObjectResult>",
            s3_time(m.uploaded_ms),
            xml_escape(&m.etag)
        ),
    ))
}

/// `GET ?uploadId=`: the parts stored so far (one page: an upload has at most
/// 10,000 parts and clients page by `part-number-marker`).
pub(super) fn list_parts(
    req: &S3Request,
    space: &dyn Space,
    store: &ObjectStore,
    key: &str,
    id: &str,
) -> Result<S3Response, S3Error> {
    let (b, k) = space.locate(key)?;
    let marker: u32 = req
        .param("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let max: usize = req
        .param("max-parts")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let parts: Vec<_> = store
        .list_parts(id, &b, &k)?
        .into_iter()
        .filter(|(n, _)| *n > marker)
        .collect();
    let truncated = parts.len() > max;
    let page = &parts[..parts.len().min(max)];
    let next = page.last().map(|(n, _)| *n).unwrap_or(marker);
    let items: String = page
        .iter()
        .map(|(n, p)| {
            format!(
                "<Part><PartNumber>{n}</PartNumber><LastModified>{}</LastModified><ETag>\"{}\"</ETag><Size>{}</Size></Part>",
                s3_time(0),
                p.md5,
                p.blob.size
            )
        })
        .collect();
    Ok(xml(
        200,
        format!(
            "<ListPartsResult {NS}><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId><PartNumberMarker>{marker}</PartNumberMarker><NextPartNumberMarker>{next}</NextPartNumberMarker><MaxParts>{max}</MaxParts><IsTruncated>{truncated}</IsTruncated>{items}</ListPartsResult>",
            space.name(),
            xml_escape(key),
            xml_escape(id)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_bucket_and_key() {
        assert_eq!(
            copy_source("/datasets/cats/a%20b.png?versionId=x").unwrap(),
            ("datasets".to_string(), "cats/a b.png".to_string())
        );
        assert!(copy_source("datasets").is_err());
        assert!(copy_source("datasets/../x").is_err());
    }
}
