//! The API's access rule: which requests need `Authorization: Bearer <API_TOKEN>`.
//!
//! Design (issue 12, item 4):
//!
//! * **Deny by default.** With `api_token` set, every request needs the token
//!   unless it is a `GET` whose path matches a pattern listed in
//!   [`OPEN_ROUTES`]. A route nobody listed (a new face's, a typo's, a 404's)
//!   is protected, never open by accident. Without a token everything is open
//!   (the API binds loopback by default).
//! * **Decided on the path the router routes.** actix-web routes on the
//!   percent-decoded path it stores in `match_info()` (`%76` is `v`; `%2F`,
//!   `%25` and `+` stay encoded), not on the raw request line. The rule reads
//!   that same path and matches it with the router's own `ResourceDef`, so the
//!   two cannot disagree: whatever the router would send to `GET /v1/keys`
//!   (`/%761/keys`, `/v1/%6Beys`) needs the token. Doubled slashes, dot
//!   segments, trailing slashes and other cases are not normalised by the
//!   router either (they match no route and get 404), and they match no open
//!   pattern, so they need the token too.
//! * **Only reads are open.** Opening a pattern opens its `GET` only; a `PUT`,
//!   `POST` or `DELETE` on the same path still needs the token. `GET /v1/keys`
//!   is not listed: the keyring is a secret.
//! * **Cross-site requests are refused.** A browser page on another origin can
//!   send a "simple" POST (form or text body) to a loopback API without a
//!   preflight. Any request but `GET` that carries an `Origin` header naming
//!   another host than `Host` gets 403, token or not.
//!
//! Adding a face: list its read-only GET patterns (actix syntax,
//! `/v1/catalog/service/{name}`) in a `pub const OPEN_GETS: &[&str]` in its
//! own module and add that slice to [`OPEN_ROUTES`]; everything else it
//! serves is protected without any further line. `PUT /v1/checks/{id}/pass`
//! and friends need nothing here: they change state, so they need the token.

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{http::Method, web, HttpResponse};
use std::sync::OnceLock;

/// The configured token, if any.
#[derive(Clone, Debug, Default)]
pub struct ApiToken(pub Option<String>);

/// The core API's read-only routes, open without the token.
pub const CORE_OPEN_GETS: &[&str] = &[
    "/",
    "/healthz",
    "/metrics",
    "/v1/members",
    "/v1/services",
    "/v1/services/{name}",
    "/v1/stats",
    "/v1/events",
    "/v1/sd/prometheus",
];

/// Every face's open GET patterns. A face adds its own slice here.
pub const OPEN_ROUTES: &[&[&str]] = &[
    CORE_OPEN_GETS,
    super::checks::OPEN_GETS,
    super::consul::OPEN_GETS,
];

fn open_defs() -> &'static [ResourceDef] {
    static DEFS: OnceLock<Vec<ResourceDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        OPEN_ROUTES
            .iter()
            .flat_map(|face| face.iter())
            .map(|p| ResourceDef::new(*p))
            .collect()
    })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True unless `method` is GET and `routed_path` (the path as the router
/// sees it: `match_info().path()`) matches an open pattern.
pub fn needs_token(method: &Method, routed_path: &str) -> bool {
    !(*method == Method::GET && open_defs().iter().any(|d| d.is_match(routed_path)))
}

pub fn authorized(token: &ApiToken, header: Option<&str>) -> bool {
    match &token.0 {
        None => true,
        Some(t) => header
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), t.as_bytes())),
    }
}

/// True when a non-GET request comes from a browser page of another origin.
pub fn cross_site(method: &Method, origin: Option<&str>, host: Option<&str>) -> bool {
    if *method == Method::GET {
        return false;
    }
    match origin {
        None => false,
        Some(o) => {
            let origin_host = o.split_once("://").map_or(o, |(_, rest)| rest);
            Some(origin_host.trim_end_matches('/')) != host
        }
    }
}

fn refuse(
    req: ServiceRequest,
    status: actix_web::http::StatusCode,
    msg: &str,
) -> ServiceResponse<actix_web::body::BoxBody> {
    let resp = HttpResponse::build(status).json(serde_json::json!({ "error": msg }));
    req.into_response(resp)
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    };
    let (origin, host) = (header("origin"), header("host"));
    if cross_site(req.method(), origin.as_deref(), host.as_deref()) {
        let msg = format!(
            "cross-site request refused: Origin {} is not this API ({})",
            origin.unwrap_or_default(),
            host.unwrap_or_default()
        );
        let resp = refuse(req, actix_web::http::StatusCode::FORBIDDEN, &msg);
        return Ok(resp.map_into_right_body());
    }
    let routed = req.match_info().get_ref().path().to_string();
    if needs_token(req.method(), &routed) {
        let token = req
            .app_data::<web::Data<ApiToken>>()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        // Consul's clients send the token as `X-Consul-Token` instead.
        let given = header("authorization")
            .or_else(|| header("x-consul-token").map(|t| format!("Bearer {t}")));
        if !authorized(&token, given.as_deref()) {
            let msg = format!(
                "{} {routed} needs Authorization: Bearer <API_TOKEN>",
                req.method()
            );
            let resp = refuse(req, actix_web::http::StatusCode::UNAUTHORIZED, &msg);
            return Ok(resp.map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_gets_are_open() {
        assert!(needs_token(&Method::PUT, "/v1/services"));
        assert!(needs_token(&Method::POST, "/v1/leave"));
        assert!(needs_token(&Method::DELETE, "/v1/services/web"));
        assert!(needs_token(&Method::GET, "/v1/keys"));
        assert!(needs_token(&Method::POST, "/v1/keys"));
        assert!(needs_token(&Method::HEAD, "/v1/members"));
        assert!(needs_token(&Method::GET, "/v1/no-such-route"));
        assert!(!needs_token(&Method::GET, "/v1/members"));
        assert!(!needs_token(&Method::GET, "/v1/services/web"));
        assert!(!needs_token(&Method::GET, "/healthz"));
        assert!(!needs_token(&Method::GET, "/"));
    }

    #[test]
    fn odd_spellings_are_never_open() {
        for p in [
            "//v1/members",
            "/v1//members",
            "/v1/members/",
            "/v1/./members",
            "/v1/x/../members",
            "/V1/MEMBERS",
            "/v1/services/a/b",
            "/v1/keys/",
            "//v1/keys",
        ] {
            assert!(needs_token(&Method::GET, p), "{p} was open");
        }
    }

    #[test]
    fn cross_site_writes_are_refused() {
        let host = Some("127.0.0.1:8946");
        assert!(cross_site(&Method::POST, Some("http://evil.example"), host));
        assert!(!cross_site(
            &Method::POST,
            Some("http://127.0.0.1:8946"),
            host
        ));
        assert!(!cross_site(&Method::POST, None, host));
        assert!(!cross_site(&Method::GET, Some("http://evil.example"), host));
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
