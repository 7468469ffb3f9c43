//! Reading a request: its body (at most [`MAX_BODY`] bytes), a JSON body
//! whose errors leave the body's values out, and who asked.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use super::answer::{Refused, bad, error};

/// The largest request body read (a config or a ban), in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// Who asked, as the log names them: the `X-Operator` header (1 to 128
/// bytes), else `unknown`.
pub(super) fn operator<B>(req: &Request<B>) -> String {
    req.headers()
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or("unknown")
        .to_owned()
}

/// Reads a body of at most [`MAX_BODY`] bytes.
pub(super) async fn read<B>(req: Request<B>) -> Result<Bytes, Refused>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        ))),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// A JSON body as `T`; a 400 that says what was wanted, with the values
/// of the body left out (they may be session tokens).
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    want: &str,
) -> Result<T, Refused> {
    serde_json::from_slice(body)
        .map_err(|e| bad(format!("{}: want {want}", without_strings(&e.to_string()))))
}

/// A message with the values a body held left out: the content of every
/// double-quoted string (serde quotes the values it could not use:
/// `invalid type: string "...", expected u64`), and of every backquoted
/// name that is not a plain short field name (`unknown field `...``).
fn without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[i] as char;
        out.push_str(&rest[..=i]);
        let inner = &rest[i + 1..];
        // The end of the quoted text (a `"` string may escape its quotes).
        let mut end = None;
        let mut escaped = false;
        for (j, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                end = Some(j);
                break;
            }
        }
        let text = &inner[..end.unwrap_or(inner.len())];
        let plain_name = quote == '`'
            && !text.is_empty()
            && text.len() <= 24
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        out.push_str(if plain_name { text } else { "<redacted>" });
        out.push(quote);
        rest = match end {
            Some(j) => &inner[j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_leaves_the_values_of_the_body_out() {
        assert_eq!(
            without_strings(r#"invalid type: string "tok\"en", expected u64 at line 1"#),
            r#"invalid type: string "<redacted>", expected u64 at line 1"#
        );
        assert_eq!(without_strings(r#"open "tok"#), r#"open "<redacted>""#);
        assert_eq!(
            without_strings("unknown field `Tok-3n`, expected one of `actor`, `secs` at line 1"),
            "unknown field `<redacted>`, expected one of `actor`, `secs` at line 1"
        );
        assert_eq!(without_strings("no quotes"), "no quotes");
    }
}
