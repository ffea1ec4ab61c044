//! The write handlers: registration, deregistration and TTL check updates
//! on the local agent, sent to the Registry actor as the same messages
//! `PUT /v1/services` sends.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::register::{check_update as parse_update, service_from_consul};
use super::text_error;
use crate::messages::{Deregister, Register, TtlUpdate};
use crate::node::NodeHandle;
use crate::protocol::checks::resolve_all;
use crate::protocol::services::Health;

type Node = web::Data<NodeHandle>;

fn unavailable() -> HttpResponse {
    text_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the agent is restarting an actor; try again",
    )
}

fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("Request decode failed: empty body".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("Request decode failed: {e}"))
}

/// `PUT /v1/agent/service/register`.
pub async fn register(node: Node, body: web::Bytes) -> HttpResponse {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, e),
    };
    let (service, specs) = match service_from_consul(&value) {
        Ok(x) => x,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, format!("Invalid Service: {e}")),
    };
    if let Err(e) = service.validate() {
        return text_error(StatusCode::BAD_REQUEST, format!("Invalid Service: {e}"));
    }
    let checks = match resolve_all(service.id(), &specs) {
        Ok(c) => c,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, format!("Invalid Check: {e}")),
    };
    match node.registry.send(Register { service, checks }).await {
        Ok(Ok(())) => HttpResponse::Ok().finish(),
        Ok(Err(e)) => text_error(StatusCode::BAD_REQUEST, format!("Invalid Service: {e}")),
        Err(_) => unavailable(),
    }
}

/// `PUT /v1/agent/service/deregister/{id}`.
pub async fn deregister(node: Node, id: web::Path<String>) -> HttpResponse {
    match node.registry.send(Deregister(id.clone())).await {
        Ok(Ok(true)) => HttpResponse::Ok().finish(),
        Ok(Ok(false)) => text_error(
            StatusCode::NOT_FOUND,
            format!("Unknown service ID {:?}. Ensure that the service ID is passed, not the service name.", id.as_str()),
        ),
        Ok(Err(e)) => text_error(StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}

/// `PUT /v1/agent/check/{pass,warn,fail}/{id}?note=...` and
/// `PUT /v1/agent/check/update/{id}` with `{"Status", "Output"}`.
pub async fn check_update(node: Node, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let verb = req.match_info().get("verb").unwrap_or_default().to_string();
    let check_id = req.match_info().get("id").unwrap_or_default().to_string();
    let note = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.iter().find(|(k, _)| k == "note").map(|(_, v)| v.clone()));
    let (status, note) = match verb.as_str() {
        "pass" => (Health::Passing, note),
        "warn" => (Health::Warning, note),
        "fail" => (Health::Critical, note),
        "update" => match parse_body(&body).and_then(|v| parse_update(&v)) {
            Ok(x) => x,
            Err(e) => return text_error(StatusCode::BAD_REQUEST, e),
        },
        _ => {
            return text_error(
                StatusCode::NOT_FOUND,
                format!("404 page not found: /v1/agent/check/{verb}/{check_id}"),
            )
        }
    };
    let msg = TtlUpdate {
        check_id: check_id.clone(),
        status,
        note,
    };
    match node.registry.send(msg).await {
        Ok(Ok(())) => HttpResponse::Ok().finish(),
        // Consul's 404 for a check this agent does not run.
        Ok(Err(e)) if e.contains("no check") => text_error(
            StatusCode::NOT_FOUND,
            format!("Unknown check ID {check_id:?}: {e}"),
        ),
        Ok(Err(e)) => text_error(StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}
