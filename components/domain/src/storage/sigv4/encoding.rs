//! AWS's URI encoding rules, for canonical requests and S3 keys.

/// Query pairs, percent-decoded (`+` stays a plus, as S3 reads it); a bare
/// name (`?uploads`) has an empty value.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decodes (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// AWS's URI encoding: unreserved characters stay, everything else is `%XX`
/// (upper-case); `/` stays in paths.
pub fn aws_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_aws_rules() {
        assert_eq!(aws_encode("a b/c~d+e", false), "a%20b/c~d%2Be");
        assert_eq!(aws_encode("a/b", true), "a%2Fb");
        assert_eq!(percent_decode("a%20b%2Fc%zz"), "a b/c%zz");
        assert_eq!(
            decode_query("uploads&partNumber=2&x=a%2Bb"),
            vec![
                ("uploads".to_string(), String::new()),
                ("partNumber".to_string(), "2".to_string()),
                ("x".to_string(), "a+b".to_string())
            ]
        );
    }
}
