//! Strict JSON request bodies: the one way the API reads a body.
//!
//! `StrictJson<T>` accepts a JSON object and nothing else, refuses fields
//! `T` does not know (`T` carries `#[serde(deny_unknown_fields)]`) with a
//! "did you mean" hint, and every refusal is a 400 with a JSON error that
//! says what was wrong, where (field, line and column) and what is accepted.
//!
//! Content types: `application/json` (and `+json` types), none at all, and
//! `application/x-www-form-urlencoded` (what `curl -d` sends) are read as
//! JSON; anything else is refused naming the expected type. Cross-site
//! browser posts are refused before this by the access rule (`auth.rs`).

use actix_web::{dev::Payload, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::suggest::did_you_mean;

pub struct StrictJson<T>(pub T);

impl<T> StrictJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn bad_request(msg: String) -> actix_web::Error {
    let resp = HttpResponse::build(StatusCode::BAD_REQUEST).json(json!({ "error": msg }));
    actix_web::error::InternalError::from_response(msg, resp).into()
}

fn acceptable_content_type(req: &HttpRequest) -> Result<(), String> {
    let Some(ct) = req.headers().get("content-type") else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-www-form-urlencoded"
    {
        Ok(())
    } else {
        Err(format!(
            "Content-Type {essence:?} is not accepted; send the body as application/json"
        ))
    }
}

/// Parses `bytes` as a JSON object into `T`; the error is one sentence.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Err("the request body is empty; expected a JSON object".into()),
        Some(b'{') => {}
        Some(_) => {
            let kind = match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(serde_json::Value::Array(_)) => "an array",
                Ok(serde_json::Value::String(_)) => "a string",
                Ok(serde_json::Value::Number(_)) => "a number",
                Ok(_) => "not an object",
                Err(_) => "not JSON",
            };
            return Err(format!(
                "the request body is {kind}; expected a JSON object ({{...}})"
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| explain(&e.to_string()))
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into the
/// API's style, with a hint.
fn explain(serde_msg: &str) -> String {
    let quoted: Vec<&str> = serde_msg.split('`').skip(1).step_by(2).collect();
    if serde_msg.starts_with("unknown field") && !quoted.is_empty() {
        let (unknown, accepted) = (quoted[0], &quoted[1..]);
        let at = serde_msg
            .rfind(" at line ")
            .map(|i| &serde_msg[i..])
            .unwrap_or("");
        let hint = did_you_mean(unknown, accepted.iter().copied())
            .map(|s| format!("did you mean {s:?}? "))
            .unwrap_or_default();
        return format!(
            "invalid JSON body: unknown field {unknown:?}{at}; {hint}accepted fields: {}",
            accepted.join(", ")
        );
    }
    format!("invalid JSON body: {serde_msg}")
}

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = acceptable_content_type(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            content_type.map_err(bad_request)?;
            let bytes = body.await.map_err(|e| {
                bad_request(format!(
                    "cannot read the request body ({e}); at most {} bytes",
                    super::MAX_BODY
                ))
            })?;
            parse_object(&bytes).map(StrictJson).map_err(bad_request)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Svc {
        name: String,
        port: Option<u16>,
    }

    #[test]
    fn unknown_fields_are_refused_with_a_hint() {
        let e = parse_object::<Svc>(br#"{"name": "a", "prot": 1}"#).unwrap_err();
        assert!(e.contains("unknown field \"prot\""), "{e}");
        assert!(e.contains("did you mean \"port\"?"), "{e}");
        assert!(e.contains("accepted fields: name, port"), "{e}");
    }

    #[test]
    fn only_objects_are_bodies() {
        for (body, word) in [
            (&b"[]"[..], "array"),
            (b"\"x\"", "string"),
            (b"  ", "empty"),
            (b"{", "invalid JSON"),
        ] {
            let e = parse_object::<Svc>(body).unwrap_err();
            assert!(e.contains(word), "{e}");
            assert!(!e.contains("elements"), "{e}");
        }
        assert!(parse_object::<Svc>(br#"{"name": "a"}"#).is_ok());
    }
}
