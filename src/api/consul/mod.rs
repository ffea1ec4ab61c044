//! The Consul face: the part of Consul's HTTP API that service-discovery
//! clients call (Prometheus' `consul_sd_configs`, Traefik, consul-template,
//! the Consul client libraries), served by every agent on its API port with
//! no Consul servers. README.md, "Coming from Consul", says what is there
//! and what is not.
//!
//! * `render.rs`: the catalog, health and agent answers from one snapshot;
//! * `types.rs`: Consul's JSON shapes;
//! * `blocking.rs`: `?index=&wait=`, the per-target X-Consul-Index;
//! * `reads.rs`, `writes.rs`: the handlers;
//! * `register.rs`: Consul's registration body onto Gossip's service and
//!   check model (one model, two faces: `PUT /v1/services` is the other).
//!
//! Every read comes from the published snapshot (`NodeHandle.snapshot`);
//! every answer is this agent's local view, eventually consistent, so
//! `?stale` and `?consistent` are accepted and change nothing. Errors are
//! Consul's: plain text, Consul's status codes.

pub mod blocking;
pub mod reads;
pub mod register;
pub mod render;
pub mod types;
pub mod writes;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use blocking::IndexBook;

/// The face's read-only GETs, open without `API_TOKEN` (the API access rule
/// in `auth.rs` lists them); every write needs the token, which Consul's
/// clients send as `X-Consul-Token`.
pub const OPEN_GETS: &[&str] = &[
    "/v1/agent/self",
    "/v1/agent/members",
    "/v1/agent/services",
    "/v1/agent/checks",
    "/v1/catalog/services",
    "/v1/catalog/service/{name}",
    "/v1/catalog/nodes",
    "/v1/catalog/node/{node}",
    "/v1/health/service/{name}",
    "/v1/health/checks/{name}",
    "/v1/health/state/{state}",
    "/v1/status/leader",
    "/v1/status/peers",
];

/// The headers every Consul read carries.
pub fn consul_headers(b: &mut HttpResponseBuilder, index: Option<u64>) {
    if let Some(i) = index {
        b.insert_header(("X-Consul-Index", i.to_string()));
    }
    b.insert_header(("X-Consul-KnownLeader", "true"))
        .insert_header(("X-Consul-LastContact", "0"))
        .insert_header(("X-Consul-Effective-Consistency", "stale"));
}

/// A JSON answer with Consul's headers.
pub fn json_body(index: Option<u64>, body: impl Into<String>) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    consul_headers(&mut b, index);
    b.content_type("application/json").body(body.into())
}

/// An error as Consul gives it: plain text.
pub fn text_error(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(msg.into())
}

async fn unknown_endpoint(req: HttpRequest) -> HttpResponse {
    let hint = match req.path().split('/').nth(2) {
        Some(
            area @ ("kv" | "session" | "acl" | "query" | "connect" | "txn" | "coordinate"
            | "operator"),
        ) => {
            format!(" (Gossip has no Consul servers, so no /v1/{area}; see README.md, \"Coming from Consul\")")
        }
        _ => String::new(),
    };
    text_error(
        StatusCode::NOT_FOUND,
        format!("404 page not found: {} {}{hint}", req.method(), req.path()),
    )
}

fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<HttpResponse> + Clone {
    move |req: HttpRequest| {
        let mut r = text_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed", req.method()),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(r)
    }
}

fn get(
    path: &str,
    h: impl actix_web::Handler<
            (
                web::Data<crate::node::NodeHandle>,
                web::Data<IndexBook>,
                HttpRequest,
            ),
            Output = HttpResponse,
        > + 'static,
) -> actix_web::Resource {
    web::resource(path)
        .route(web::get().to(h))
        .default_service(web::to(method_not_allowed("GET")))
}

/// Registers the Consul routes (`.configure(consul::routes)`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let book = web::Data::new(IndexBook::default());
    let put = |path: &str| {
        web::resource(path.to_string()).default_service(web::to(method_not_allowed("PUT")))
    };
    cfg.service(
        web::scope("/v1/agent")
            .app_data(book.clone())
            .service(
                web::resource("/self")
                    .route(web::get().to(reads::agent_self))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(get("/members", reads::agent_members))
            .service(get("/services", reads::agent_services))
            .service(
                web::resource("/checks")
                    .route(web::get().to(reads::agent_checks))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(put("/service/register").route(web::put().to(writes::register)))
            .service(put("/service/deregister/{id}").route(web::put().to(writes::deregister)))
            .service(put("/check/{verb}/{id}").route(web::put().to(writes::check_update)))
            .default_service(web::to(unknown_endpoint)),
    )
    .service(
        web::scope("/v1/catalog")
            .app_data(book.clone())
            .service(get("/services", reads::catalog_services))
            .service(get("/service/{name}", reads::catalog_service))
            .service(get("/nodes", reads::catalog_nodes))
            .service(get("/node/{node}", reads::catalog_node))
            .default_service(web::to(unknown_endpoint)),
    )
    .service(
        web::scope("/v1/health")
            .app_data(book.clone())
            .service(get("/service/{name}", reads::health_service))
            .service(get("/checks/{name}", reads::health_checks))
            .service(get("/state/{state}", reads::health_state))
            .default_service(web::to(unknown_endpoint)),
    )
    .service(
        web::scope("/v1/status")
            .service(
                web::resource("/leader")
                    .route(web::get().to(reads::status_leader))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                web::resource("/peers")
                    .route(web::get().to(reads::status_peers))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .default_service(web::to(unknown_endpoint)),
    );
    for area in [
        "kv",
        "session",
        "acl",
        "query",
        "connect",
        "txn",
        "coordinate",
        "operator",
    ] {
        cfg.service(web::scope(&format!("/v1/{area}")).default_service(web::to(unknown_endpoint)));
    }
}
