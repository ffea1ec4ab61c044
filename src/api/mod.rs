//! The HTTP face of a node (actix-web): members, services, leave, fault
//! injection and counters. Handlers only translate between JSON and actor
//! messages; every answer, errors included, is JSON.

pub mod auth;
pub mod body;
pub mod checks;
pub mod client;
pub mod consul;
pub mod dashboard;
pub mod events;
pub mod prometheus;
pub mod sd;

use actix_web::{error::JsonPayloadError, web, App, HttpRequest, HttpResponse, HttpServer};
use body::StrictJson;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::messages::*;
use crate::node::NodeHandle;
use crate::protocol::checks::{resolve_all, CheckSpec};
use crate::protocol::services::{HealthFilter, Service};
use crate::protocol::{Member, MemberState};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MemberView {
    pub id: String,
    pub addr: String,
    pub state: MemberState,
    pub incarnation: u64,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            id: m.id.to_string(),
            addr: m.addr.to_string(),
            state: m.state,
            incarnation: m.incarnation,
        }
    }
}

fn error(status: actix_web::http::StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": msg.into() }))
}

fn unavailable() -> HttpResponse {
    error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "the node is restarting an actor; try again",
    )
}

// Reads come from the published snapshot (`snapshot.rs`), never through
// an actor's mailbox.

async fn members(node: web::Data<NodeHandle>) -> HttpResponse {
    let snap = node.snapshot.borrow().clone();
    HttpResponse::Ok().json(snap.members().map(MemberView::from).collect::<Vec<_>>())
}

/// `?passing` and `?status=passing,warning` on lookups.
#[derive(Deserialize)]
pub struct HealthQuery {
    pub passing: Option<String>,
    pub status: Option<String>,
}

impl HealthQuery {
    pub fn filter(&self) -> Result<HealthFilter, Box<HttpResponse>> {
        HealthFilter::from_query(self.passing.as_deref(), self.status.as_deref())
            .map_err(|e| Box::new(error(actix_web::http::StatusCode::BAD_REQUEST, e)))
    }
}

async fn services(node: web::Data<NodeHandle>, q: web::Query<HealthQuery>) -> HttpResponse {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let snap = node.snapshot.borrow().clone();
    HttpResponse::Ok().json(filter.apply(snap.catalog()))
}

async fn service(
    node: web::Data<NodeHandle>,
    name: web::Path<String>,
    q: web::Query<HealthQuery>,
) -> HttpResponse {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let snap = node.snapshot.borrow().clone();
    let mut list = snap.catalog().remove(name.as_str()).unwrap_or_default();
    list.retain(|i| filter.keeps(i.status));
    HttpResponse::Ok().json(list)
}

/// The body of `PUT /v1/services`. `port` may be left out: the agent then
/// uses its own NODE_PORT, as `SERVICES=web` does.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    port: Option<u16>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    id: String,
    #[serde(default)]
    address: Option<String>,
    /// Its health checks (`checks`, or one `check`).
    #[serde(default)]
    checks: Vec<CheckSpec>,
    #[serde(default)]
    check: Option<CheckSpec>,
}

async fn register(node: web::Data<NodeHandle>, body: StrictJson<RegisterBody>) -> HttpResponse {
    let b = body.into_inner();
    let mut svc = Service::new(&b.name, b.port.unwrap_or(node.addr.port()));
    svc.tags = b.tags;
    svc.meta = b.meta;
    svc.id = b.id;
    svc.address = b.address;
    if let Err(e) = svc.validate() {
        return error(actix_web::http::StatusCode::BAD_REQUEST, e);
    }
    let mut checks = b.checks;
    if let Some(c) = b.check {
        checks.insert(0, c);
    }
    let defs = match resolve_all(svc.id(), &checks) {
        Ok(d) => d,
        Err(e) => return error(actix_web::http::StatusCode::BAD_REQUEST, e),
    };
    let msg = Register {
        service: svc.clone(),
        checks: defs,
    };
    match node.registry.send(msg).await {
        // The instance as stored: its health is the checks' to decide.
        Ok(Ok(())) => match node.registry.send(LocalServices).await {
            Ok(list) => HttpResponse::Ok()
                .json(list.into_iter().find(|s| s.id() == svc.id()).unwrap_or(svc)),
            Err(_) => HttpResponse::Ok().json(svc),
        },
        Ok(Err(e)) => error(actix_web::http::StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}

async fn deregister(node: web::Data<NodeHandle>, name: web::Path<String>) -> HttpResponse {
    match node.registry.send(Deregister(name.clone())).await {
        Ok(Ok(true)) => HttpResponse::Ok().json(json!({ "deregistered": name.as_str() })),
        Ok(Ok(false)) => error(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("no service {:?} on this node", name.as_str()),
        ),
        Ok(Err(e)) => error(actix_web::http::StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}

async fn leave(node: web::Data<NodeHandle>) -> HttpResponse {
    node.leave.do_send(Leave);
    HttpResponse::Accepted().json(json!({ "leaving": node.id.as_str() }))
}

async fn faults(node: web::Data<NodeHandle>, body: StrictJson<SetFaults>) -> HttpResponse {
    let f = body.into_inner();
    for (k, v) in [("loss_in", f.loss_in), ("loss_out", f.loss_out)] {
        if !(0.0..=1.0).contains(&v) {
            return error(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("{k} must be a fraction from 0 to 1"),
            );
        }
    }
    node.transport.do_send(f.clone());
    HttpResponse::Ok().json(f)
}

async fn stats(node: web::Data<NodeHandle>) -> HttpResponse {
    let mut counters = serde_json::Map::new();
    for (name, (value, _)) in node.metrics.snapshot() {
        counters.insert(name.to_string(), json!(value));
    }
    let m = &node.metrics;
    use crate::metrics::Metrics as M;
    counters.insert(
        "members".into(),
        json!({
            "alive": M::get(&m.members_alive),
            "suspect": M::get(&m.members_suspect),
            "dead": M::get(&m.members_dead),
            "left": M::get(&m.members_left),
        }),
    );
    HttpResponse::Ok().json(counters)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    op: String,
    key: String,
    /// Also send the change to every live member (default true).
    #[serde(default = "yes")]
    cluster: bool,
}

fn yes() -> bool {
    true
}

async fn keys_list(node: web::Data<NodeHandle>) -> HttpResponse {
    keys_answer(node.transport.send(KeyringOp::List).await)
}

async fn keys_change(node: web::Data<NodeHandle>, body: StrictJson<KeyRequest>) -> HttpResponse {
    use crate::protocol::wire::{encode_msg, KeyOpKind, Msg};
    let KeyRequest { op, key, cluster } = body.into_inner();
    let (local, kind) = match op.as_str() {
        "install" => (KeyringOp::Install(key.clone()), KeyOpKind::Install),
        "use" => (KeyringOp::Use(key.clone()), KeyOpKind::Use),
        "remove" => (KeyringOp::Remove(key.clone()), KeyOpKind::Remove),
        other => {
            return error(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("op must be install, use or remove, not {other:?}"),
            )
        }
    };
    let answer = node.transport.send(local).await;
    let keyed = matches!(&answer, Ok(Ok(keys)) if !keys.is_empty());
    if cluster && keyed {
        // Tell every live member directly, sealed with our (new) primary
        // key; three times, 100 ms apart, since UDP may lose one.
        {
            let snap = node.snapshot.borrow().clone();
            let peers: Vec<SocketAddr> = snap
                .members()
                .filter(|m| m.id != node.id && m.state.is_live())
                .map(|m| m.addr)
                .collect();
            let msg = encode_msg(&Msg::key_op(kind, key));
            let transport = node.transport.clone();
            actix_rt::spawn(async move {
                for _ in 0..3 {
                    for &to in &peers {
                        transport.do_send(Outbound {
                            to,
                            msgs: vec![msg.clone()],
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            });
        }
    }
    keys_answer(answer)
}

fn keys_answer(r: Result<Result<Vec<String>, String>, actix::MailboxError>) -> HttpResponse {
    match r {
        Ok(Ok(keys)) => HttpResponse::Ok().json(json!({ "primary": keys.first(), "keys": keys })),
        Ok(Err(e)) => error(actix_web::http::StatusCode::BAD_REQUEST, e),
        Err(_) => unavailable(),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    error(
        actix_web::http::StatusCode::NOT_FOUND,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    )
}

/// A resource whose other methods get `405` with `Allow` and a JSON error.
/// `allow` lists the methods the caller gives it routes for (a test checks
/// that they agree).
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", allow))
            .json(json!({
                "error": format!("{} is not allowed on {}; allowed: {allow}", req.method(), req.path())
            }))
    }))
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let msg = match &err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            format!("request body larger than {limit} bytes")
        }
        JsonPayloadError::ContentType => "expected Content-Type: application/json".to_string(),
        other => format!("invalid JSON body: {other}"),
    };
    actix_web::error::InternalError::from_response(
        err,
        error(actix_web::http::StatusCode::BAD_REQUEST, msg),
    )
    .into()
}

fn query_error(err: actix_web::error::QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    let msg = format!("invalid query string {:?}: {err}", req.query_string());
    actix_web::error::InternalError::from_response(
        err,
        error(actix_web::http::StatusCode::BAD_REQUEST, msg),
    )
    .into()
}

/// The core API's routes (other faces add theirs with `.configure`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", "GET").get(healthz))
        .service(resource("/v1/members", "GET").get(members))
        .service(
            resource("/v1/services", "GET, PUT")
                .get(services)
                .put(register),
        )
        .service(
            resource("/v1/services/{name}", "GET, DELETE")
                .get(service)
                .delete(deregister),
        )
        .service(resource("/v1/leave", "POST").post(leave))
        .service(resource("/v1/faults", "POST").post(faults))
        .service(resource("/v1/stats", "GET").get(stats))
        .service(
            resource("/v1/keys", "GET, POST")
                .get(keys_list)
                .post(keys_change),
        )
        .service(resource("/v1/events", "GET").get(events::stream))
        .service(resource("/v1/sd/prometheus", "GET").get(sd::prometheus))
        .service(resource("/metrics", "GET").get(prometheus::metrics))
        .service(resource("/", "GET").get(dashboard::index));
}

/// Binds the API on `addr` and returns the running server (spawn or await it).
pub fn serve(
    node: NodeHandle,
    addr: SocketAddr,
    token: auth::ApiToken,
) -> std::io::Result<actix_web::dev::Server> {
    let token = web::Data::new(token);
    // The event hub lives as long as the node's API: started here, subscribed
    // to membership before anything else can happen.
    let hub = web::Data::new(events::EventHub::start(&node));
    let data = web::Data::new(node);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(token.clone())
            .wrap(actix_web::middleware::from_fn(auth::require_token))
            .app_data(hub.clone())
            // For faces that use `web::Json` (the core API uses the stricter
            // `body::StrictJson`): the same content types, the same errors.
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .content_type_required(false)
                    .content_type(|m| m.essence_str() == "application/x-www-form-urlencoded")
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::default().limit(MAX_BODY))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .configure(routes)
            .configure(checks::routes)
            .configure(consul::routes)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?
    .run();
    Ok(server)
}
