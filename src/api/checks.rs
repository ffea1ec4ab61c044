//! The health-check routes of the API:
//! * `GET /v1/checks`: this node's checks, with their status and last output
//!   (output is kept on the node that runs the check, never gossiped);
//! * `PUT /v1/checks/{id}/pass|warn|fail` (also `POST`, as Consul takes
//!   it): a TTL check's report, with an optional note as `?note=` or as the
//!   JSON body `{"note": "..."}`.
//!
//! Registration with checks is `PUT /v1/services` (`api/mod.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{error, unavailable};
use crate::messages::{LocalChecks, TtlUpdate};
use crate::node::NodeHandle;
use crate::protocol::checks::{parse_ttl_verb, CheckKind, CheckState, MAX_NOTE};
use crate::protocol::services::Health;

/// Open without the token (`auth.rs`): the list is a read.
pub const OPEN_GETS: &[&str] = &["/v1/checks"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/checks", "GET").get(list))
        .service(
            super::resource("/v1/checks/{id}/{verb}", "PUT, POST")
                .put(report)
                .post(report),
        );
}

/// One check as `GET /v1/checks` shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckView {
    pub id: String,
    pub name: String,
    pub service_id: String,
    /// `http`, `tcp` or `ttl`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The URL, the `host:port`, or the TTL in ms.
    pub target: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub status: Health,
    pub output: String,
}

impl From<CheckState> for CheckView {
    fn from(c: CheckState) -> Self {
        let (kind, target) = match &c.def.kind {
            CheckKind::Http(u) => ("http", u.clone()),
            CheckKind::Tcp(a) => ("tcp", a.clone()),
            CheckKind::Ttl(t) => ("ttl", t.as_millis().to_string()),
        };
        CheckView {
            id: c.def.id,
            name: c.def.name,
            service_id: c.def.service_id,
            kind: kind.into(),
            target,
            interval_ms: c.def.interval.as_millis() as u64,
            timeout_ms: c.def.timeout.as_millis() as u64,
            status: c.status,
            output: c.output,
        }
    }
}

async fn list(node: web::Data<NodeHandle>) -> HttpResponse {
    match node.registry.send(LocalChecks).await {
        Ok(list) => {
            HttpResponse::Ok().json(list.into_iter().map(CheckView::from).collect::<Vec<_>>())
        }
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
struct NoteQuery {
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: Option<String>,
}

async fn report(
    node: web::Data<NodeHandle>,
    path: web::Path<(String, String)>,
    query: web::Query<NoteQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let (id, verb) = path.into_inner();
    let status = match parse_ttl_verb(&verb) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, format!("no such endpoint: {e}")),
    };
    let mut note = query.into_inner().note;
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<NoteBody>(&body) {
            Ok(b) => note = b.note.or(note),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
        }
    }
    if note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("note: longer than {MAX_NOTE} bytes"),
        );
    }
    let msg = TtlUpdate {
        check_id: id.clone(),
        status,
        note,
    };
    match node.registry.send(msg).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({ "check": id, "status": status })),
        Ok(Err(e)) if e.starts_with("no check") => error(StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}
