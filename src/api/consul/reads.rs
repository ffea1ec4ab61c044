//! The read handlers: parse Consul's query arguments, then answer from the
//! snapshot through `blocking::answer` (so every catalog, health and agent
//! read honours `?index=&wait=` and carries its X-Consul-Index).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::blocking::{answer, parse_query, IndexBook, QueryOpts};
use super::{json_body, render, text_error};
use crate::messages::LocalChecks;
use crate::node::NodeHandle;
use crate::snapshot::Snapshot;

type Node = web::Data<NodeHandle>;
type Book = web::Data<IndexBook>;

fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Consul's query arguments, or the status and text of Consul's error.
fn query(req: &HttpRequest, node: &NodeHandle) -> Result<QueryOpts, (StatusCode, String)> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("Invalid query: {e}")))?;
    let q = parse_query(&pairs).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    if q.dc.as_deref().is_some_and(|dc| dc != &*node.cluster) {
        // Consul's answer for a datacenter it cannot reach.
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "No path to datacenter".into(),
        ));
    }
    Ok(q)
}

/// Answers a read of `target`, blocking if the query asks to.
async fn read(
    req: &HttpRequest,
    node: &NodeHandle,
    book: &IndexBook,
    target: String,
    render: impl Fn(&Snapshot, &QueryOpts, &str) -> String,
) -> HttpResponse {
    let q = match query(req, node) {
        Ok(q) => q,
        Err((status, e)) => return text_error(status, e),
    };
    // The target names what the body depends on: the endpoint, its path
    // argument and the filters.
    let target = format!("{target}?tags={:?}&passing={}", q.tags, q.passing);
    let dc = node.cluster.clone();
    let r = |s: &Snapshot| render(s, &q, &dc);
    let (index, body) = answer(&node.snapshot, book, &target, &q, &r).await;
    json_body(Some(index), &*body)
}

pub async fn catalog_services(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    read(&req, &node, &book, "catalog/services".into(), |s, _, _| {
        to_json(&render::catalog_services(s))
    })
    .await
}

pub async fn catalog_service(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    read(
        &req,
        &node,
        &book,
        format!("catalog/service/{name}"),
        |s, q, dc| to_json(&render::catalog_service(s, &name, &q.tags, dc)),
    )
    .await
}

pub async fn catalog_nodes(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    read(&req, &node, &book, "catalog/nodes".into(), |s, _, dc| {
        to_json(&render::catalog_nodes(s, dc))
    })
    .await
}

pub async fn catalog_node(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("node").unwrap_or_default().to_string();
    read(
        &req,
        &node,
        &book,
        format!("catalog/node/{name}"),
        |s, _, dc| to_json(&render::catalog_node(s, &name, dc)),
    )
    .await
}

pub async fn health_service(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    read(
        &req,
        &node,
        &book,
        format!("health/service/{name}"),
        |s, q, dc| to_json(&render::health_service(s, &name, &q.tags, q.passing, dc)),
    )
    .await
}

pub async fn health_checks(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    read(
        &req,
        &node,
        &book,
        format!("health/checks/{name}"),
        |s, _, _| to_json(&render::health_checks(s, &name)),
    )
    .await
}

pub async fn health_state(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    let state = req
        .match_info()
        .get("state")
        .unwrap_or_default()
        .to_string();
    let Some(wanted) = render::parse_state(&state) else {
        return text_error(StatusCode::BAD_REQUEST, format!("Invalid state: {state}"));
    };
    read(
        &req,
        &node,
        &book,
        format!("health/state/{state}"),
        |s, _, _| to_json(&render::health_state(s, wanted)),
    )
    .await
}

pub async fn agent_members(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    read(&req, &node, &book, "agent/members".into(), |s, _, dc| {
        to_json(&render::agent_members(s, dc))
    })
    .await
}

pub async fn agent_services(node: Node, book: Book, req: HttpRequest) -> HttpResponse {
    read(&req, &node, &book, "agent/services".into(), |s, _, dc| {
        to_json(&render::agent_services(s, dc))
    })
    .await
}

/// This agent's checks, as its Checks actor runs them (their state lives
/// on this node only, not in the snapshot), by check id.
pub async fn agent_checks(node: Node) -> HttpResponse {
    let Ok(states) = node.registry.send(LocalChecks).await else {
        return text_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the agent is restarting an actor; try again",
        );
    };
    let snap = node.snapshot.borrow().clone();
    let checks: std::collections::BTreeMap<_, _> = states
        .iter()
        .map(|c| (c.def.id.clone(), render::local_check(&snap, c)))
        .collect();
    json_body(Some(snap.index), to_json(&checks))
}

pub async fn agent_self(node: Node) -> HttpResponse {
    let snap = node.snapshot.borrow().clone();
    let me = snap.own();
    let member = me.map(|m| render::agent_member(m, &node.cluster));
    let body = json!({
        "Config": {
            "Datacenter": &*node.cluster,
            "PrimaryDatacenter": &*node.cluster,
            "NodeName": node.id.as_str(),
            "NodeID": render::node_uuid(node.id.as_str()),
            "Server": false,
            "Revision": "gossip",
            "Version": "1.15.0",
            "Product": format!("gossip {}", env!("CARGO_PKG_VERSION")),
        },
        "Member": member,
        "Meta": {},
        "Stats": {},
    });
    json_body(None, body.to_string())
}

/// There are no servers and no leader; every agent answers for itself, as
/// a healthy cluster's leader would: its own gossip address.
pub async fn status_leader(node: Node) -> HttpResponse {
    json_body(None, json!(node.addr.to_string()).to_string())
}

/// Every live member's gossip address (Consul lists its Raft peers).
pub async fn status_peers(node: Node) -> HttpResponse {
    let snap = node.snapshot.borrow().clone();
    let peers: Vec<String> = snap
        .members()
        .filter(|m| m.state.is_live())
        .map(|m| m.addr.to_string())
        .collect();
    json_body(None, to_json(&peers))
}
