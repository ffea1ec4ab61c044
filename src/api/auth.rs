//! Bearer-token protection of the API's mutating endpoints.
//!
//! With `api_token` set, every request that changes something (any method but
//! GET and HEAD under `/v1/`) and the key listing must carry
//! `Authorization: Bearer <token>`; anything else gets 401 with a JSON error.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{http::Method, web, HttpResponse};

/// The configured token, if any.
#[derive(Clone, Debug, Default)]
pub struct ApiToken(pub Option<String>);

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn needs_token(method: &Method, path: &str) -> bool {
    path.starts_with("/v1/")
        && (!matches!(*method, Method::GET | Method::HEAD) || path.starts_with("/v1/keys"))
}

pub fn authorized(token: &ApiToken, header: Option<&str>) -> bool {
    match &token.0 {
        None => true,
        Some(t) => header
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), t.as_bytes())),
    }
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if needs_token(req.method(), req.path()) {
        let token = req
            .app_data::<web::Data<ApiToken>>()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        // Consul's clients send the token as `X-Consul-Token` instead.
        let header = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                req.headers()
                    .get("x-consul-token")
                    .and_then(|h| h.to_str().ok())
                    .map(|t| format!("Bearer {t}"))
            });
        if !authorized(&token, header.as_deref()) {
            let resp = HttpResponse::Unauthorized()
                .json(serde_json::json!({ "error": "this endpoint needs Authorization: Bearer <API_TOKEN>" }));
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mutations_and_keys_need_the_token() {
        assert!(needs_token(&Method::PUT, "/v1/services"));
        assert!(needs_token(&Method::POST, "/v1/leave"));
        assert!(needs_token(&Method::DELETE, "/v1/services/web"));
        assert!(needs_token(&Method::GET, "/v1/keys"));
        assert!(!needs_token(&Method::GET, "/v1/members"));
        assert!(!needs_token(&Method::GET, "/healthz"));
    }

    #[test]
    fn checks_the_bearer_token() {
        let t = ApiToken(Some("0123456789abcdef".into()));
        assert!(authorized(&t, Some("Bearer 0123456789abcdef")));
        assert!(!authorized(&t, Some("Bearer 0123456789abcdeX")));
        assert!(!authorized(&t, Some("0123456789abcdef")));
        assert!(!authorized(&t, None));
        assert!(authorized(&ApiToken(None), None));
    }
}
