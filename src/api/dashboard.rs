//! `GET /`: the live dashboard, one self-contained HTML page (no external
//! assets, no build step) compiled into the binary. It reads `/v1/events`
//! (EventSource) and polls `/v1/members`, `/v1/services` and `/v1/stats`.

use actix_web::{http::header, web, HttpResponse};

use crate::node::NodeHandle;

/// The page; `__NODE_ID__` is replaced by the serving node's id.
pub const PAGE: &str = include_str!("dashboard.html");

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn page(node_id: &str) -> String {
    PAGE.replace("__NODE_ID__", &html_escape(node_id))
}

pub async fn index(node: web::Data<NodeHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Everything the page loads comes from this node.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
        ))
        .body(page(node.id.as_str()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_names_the_node_escaped() {
        let p = super::page("n<1>");
        assert!(p.contains("n&lt;1&gt;"));
        assert!(!p.contains("__NODE_ID__"));
        assert!(
            !p.contains("http://") && !p.contains("https://"),
            "no external assets"
        );
    }
}
