//! S3's XML and time formats.

use crate::kernel::clock::rfc3339;

use super::S3Response;
use super::errors::{S3Error, s3err};

pub(super) fn xml(status: u16, body: String) -> S3Response {
    S3Response {
        status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}").into_bytes(),
    }
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub(super) fn s3_time(ms: u64) -> String {
    // S3 lists times with milliseconds: 2026-01-01T00:00:00.000Z.
    let base = rfc3339(ms / 1000 * 1000);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
}

pub fn http_date(ms: u64) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn malformed() -> S3Error {
    s3err(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
    )
}

/// The elements of a request body in document order, each as it closes:
/// (local name, its text; empty for elements holding other elements).
fn closed_elements(body: &[u8]) -> Result<Vec<(Vec<u8>, String)>, S3Error> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out = Vec::new();
    // Text arrives in pieces: plain runs and entity references (`&quot;`).
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|_| malformed())? {
            Event::Start(_) => text.clear(),
            Event::Text(t) => text.push_str(&t.decode().map_err(|_| malformed())?),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|_| malformed())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|_| malformed())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(malformed)?
                            .to_string()
                    }
                };
                text.push_str(&resolved);
            }
            Event::End(e) => {
                out.push((e.local_name().as_ref().to_vec(), std::mem::take(&mut text)));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// The `(PartNumber, ETag)` list of a `CompleteMultipartUpload` body.
pub(super) fn parse_complete(body: &[u8]) -> Result<Vec<(u32, String)>, S3Error> {
    let mut parts = Vec::new();
    let (mut number, mut etag): (Option<u32>, Option<String>) = (None, None);
    for (name, text) in closed_elements(body)? {
        match name.as_slice() {
            b"PartNumber" => number = Some(text.trim().parse().map_err(|_| malformed())?),
            b"ETag" => etag = Some(text.trim().to_string()),
            b"Part" => parts.push((
                number.take().ok_or_else(malformed)?,
                etag.take().ok_or_else(malformed)?,
            )),
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(malformed());
    }
    Ok(parts)
}

/// The keys of a `DeleteObjects` body, and whether it asked for quiet mode.
pub(super) fn parse_delete(body: &[u8]) -> Result<(Vec<String>, bool), S3Error> {
    let mut keys = Vec::new();
    let mut quiet = false;
    for (name, text) in closed_elements(body)? {
        match name.as_slice() {
            b"Key" => keys.push(text),
            b"Quiet" => quiet = text.trim().eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    if keys.is_empty() || keys.len() > 1000 {
        return Err(malformed());
    }
    Ok((keys, quiet))
}

pub(super) fn error_response(e: &S3Error, resource: &str, head: bool) -> S3Response {
    let body = if head {
        Vec::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            e.code,
            xml_escape(&e.message),
            xml_escape(resource),
            request_id()
        )
        .into_bytes()
    };
    S3Response {
        status: e.status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body,
    }
}

pub(super) fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_bodies_parse_like_boto3_sends_them() {
        let body = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part><Part><ETag>"def"</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(
            parse_complete(body).unwrap(),
            vec![(1, "\"abc\"".to_string()), (2, "\"def\"".to_string())]
        );
        assert_eq!(parse_complete(b"<oops").unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn delete_bodies_parse_like_the_aws_cli_sends_them() {
        let body = br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>cats/a&amp;b.png</Key></Object><Object><Key>cats/2.txt</Key></Object><Quiet>true</Quiet></Delete>"#;
        assert_eq!(
            parse_delete(body).unwrap(),
            (
                vec!["cats/a&b.png".to_string(), "cats/2.txt".to_string()],
                true
            )
        );
        assert_eq!(
            parse_delete(b"<Delete></Delete>").unwrap_err().code,
            "MalformedXML"
        );
    }

    #[test]
    fn times_render_as_s3_does() {
        assert_eq!(s3_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            http_date(1_700_000_000_123),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }
}
