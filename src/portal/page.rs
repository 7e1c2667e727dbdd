//! The portal page's HTML: the client's endpoints, the test form and the JWT maker. Every
//! value from the store is HTML-escaped; behaviour lives in `assets/portal.js` (no inline
//! script, so the page runs under `script-src 'self'`).

use std::fmt::Write as _;

use crate::portal::view::ClientView;
use crate::portal::ASSETS_PATH;

/// `text` with `& < > " '` replaced by character references, safe in element content and in
/// quoted attribute values (HTML Living Standard §13.1.2.3, §13.5).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// The page for `view`, whose OpenAPI document is at `openapi_path`. `base_url` is the data
/// plane's public base URL, used only in the curl line; the page's own test requests go to its
/// origin.
pub fn render(view: &ClientView, base_url: &str, openapi_path: &str) -> String {
    let name = escape(&view.name);
    let mut list = String::new();
    let mut options = String::new();
    if view.collections.iter().all(|c| c.endpoints.is_empty()) {
        list.push_str("<p id=\"no-endpoints\">No endpoint is granted to you yet. Ask your API provider to grant a collection to one of your access profiles.</p>\n");
    }
    for collection in view.collections.iter().filter(|c| !c.endpoints.is_empty()) {
        let _ = write!(
            list,
            "<section class=\"collection\" data-collection=\"{path}\">\n<h3>{name} <code>/{path}</code></h3>\n<ul>\n",
            name = escape(&collection.name),
            path = escape(&collection.path),
        );
        let _ = writeln!(options, "<optgroup label=\"{}\">", escape(&collection.name));
        for endpoint in &collection.endpoints {
            let method = escape(&endpoint.method);
            let path = escape(&endpoint.path);
            let _ = writeln!(
                list,
                "<li class=\"endpoint\"><code><span class=\"method\">{method}</span> {path}</code> <span class=\"endpoint-name\">{}</span></li>",
                escape(&endpoint.name)
            );
            let _ = writeln!(
                options,
                "<option value=\"{method} {path}\" data-method=\"{method}\" data-path=\"{path}\">{method} {path} — {}</option>",
                escape(&endpoint.name)
            );
        }
        list.push_str("</ul>\n</section>\n");
        options.push_str("</optgroup>\n");
    }
    format!(
        include_str!("assets/page.html"),
        name = name,
        list = list,
        options = options,
        base_url = escape(base_url),
        openapi = escape(openapi_path),
        assets = ASSETS_PATH,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::view::{CollectionView, EndpointView};

    #[test]
    fn escapes_everything_from_the_store() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let view = ClientView {
            name: "<script>alert(1)</script>".into(),
            collections: vec![CollectionView {
                name: "Shop \"quoted\"".into(),
                path: "shop".into(),
                endpoints: vec![EndpointView {
                    name: "<img src=x>".into(),
                    method: "GET".into(),
                    path: "/shop/orders/:id".into(),
                    params: vec!["id".into()],
                }],
            }],
        };
        let html = render(
            &view,
            "http://127.0.0.1:8080",
            "/_tokengate/portal/k/openapi.json",
        );
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img src=x>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-path=\"/shop/orders/:id\""));
        assert!(!html.contains("<script>"), "no inline script");
    }
}
