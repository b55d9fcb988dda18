//! fake-service's routing, as Go's `net/http` does it for the handlers fake-service registers
//! (nicholasjackson/fake-service `main.go`, `createHTTPServer`, v0.22.7–v0.26.2):
//!
//! ```go
//! mux.Handle(*uiPath, http.StripPrefix(*uiPath, http.FileServer(http.FS(&embedFs{}))))  // "/ui/"
//! mux.HandleFunc("/health", hh.Handle)
//! mux.HandleFunc("/ready", rh.Handle)
//! mux.Handle("/", rq)
//! ```
//!
//! What follows from Go's `net/http` (golang/go `src/net/http/server.go` and `fs.go`; the same
//! in the pre-1.22 mux, `redirectToPathSlash`, and the 1.22+ mux, `matchOrRedirect`):
//!
//! - `ServeMux`: a request naming a registered subtree root without its trailing slash
//!   (`/ui`) is answered `301 Moved Permanently` with `Location: /ui/` (query kept), by
//!   `http.Redirect`: `Content-Type: text/html; charset=utf-8` and the body
//!   `<a href="/ui/">Moved Permanently</a>.` + `"\n"` written with `Fprintln` (so two
//!   newlines). The redirect wins over the `/` catch-all.
//! - `FileServer` (`serveFile`): a path ending in `/index.html` is answered `301` with
//!   `Location: ./` by `localRedirect` (no body, no content type); a directory (`/ui/`) serves
//!   its `index.html` as `text/html; charset=utf-8`; a missing file is `http.Error`'s
//!   `404 page not found` (`text/plain; charset=utf-8`, `X-Content-Type-Options: nosniff`).
//!
//! fake-service v0.26 strips the whole `UI_PATH` (`/ui/`), older versions strip `/ui`; either
//! way the file server sees `/`, `/index.html`, `/static/…`, with the same answers.

/// Where one request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    Ready,
    /// `301` to `location`; `html_body` for `http.Redirect` (the mux), none for the file
    /// server's `localRedirect`.
    Redirect {
        location: String,
        html_body: bool,
    },
    /// The UI's `index.html`.
    UiIndex,
    /// A UI file that is not there (the sandbox's UI is one self-contained page).
    UiNotFound,
    /// fake-service's request handler (`/` and everything no other pattern takes).
    Root,
}

/// Route `path` (with its raw `query`, if any) as fake-service's mux with the UI at `ui_path`.
pub(crate) fn route(ui_path: &str, path: &str, query: Option<&str>) -> Route {
    let with_query = |location: String| match query {
        Some(q) if !q.is_empty() => format!("{location}?{q}"),
        _ => location,
    };
    match path {
        "/health" => return Route::Health,
        "/ready" => return Route::Ready,
        _ => {}
    }
    let subtree = ui_path.ends_with('/');
    // The subtree root without its slash: the mux redirects to it.
    if subtree && format!("{path}/") == ui_path {
        return Route::Redirect {
            location: with_query(ui_path.to_string()),
            html_body: true,
        };
    }
    let rest = if subtree {
        path.strip_prefix(ui_path)
    } else {
        (path == ui_path).then_some("")
    };
    let Some(rest) = rest else {
        return Route::Root;
    };
    // http.FileServer makes the stripped path absolute.
    let file = format!("/{}", rest.trim_start_matches('/'));
    if file.ends_with("/index.html") {
        return Route::Redirect {
            location: with_query("./".to_string()),
            html_body: false,
        };
    }
    if file == "/" {
        Route::UiIndex
    } else {
        Route::UiNotFound
    }
}

/// `http.Redirect`'s body for a GET: `<a href="URL">Moved Permanently</a>.` and two newlines.
pub(crate) fn redirect_body(location: &str) -> String {
    let escaped = location
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    format!("<a href=\"{escaped}\">Moved Permanently</a>.\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(location: &str, html_body: bool) -> Route {
        Route::Redirect {
            location: location.into(),
            html_body,
        }
    }

    #[test]
    fn the_ui_subtree_as_go_serves_it() {
        let ui = "/ui/";
        assert_eq!(route(ui, "/ui", None), redirect("/ui/", true));
        assert_eq!(route(ui, "/ui", Some("a=1")), redirect("/ui/?a=1", true));
        assert_eq!(route(ui, "/ui/", None), Route::UiIndex);
        assert_eq!(route(ui, "/ui/index.html", None), redirect("./", false));
        assert_eq!(route(ui, "/ui/static/js/main.js", None), Route::UiNotFound);
        assert_eq!(route(ui, "/", None), Route::Root);
        assert_eq!(route(ui, "/uix", None), Route::Root);
        assert_eq!(route(ui, "/health", None), Route::Health);
        assert_eq!(route(ui, "/ready", None), Route::Ready);
    }

    #[test]
    fn another_ui_path_leaves_ui_to_the_request_handler() {
        let ui = "/dashboard/";
        assert_eq!(route(ui, "/ui", None), Route::Root);
        assert_eq!(route(ui, "/ui/", None), Route::Root);
        assert_eq!(route(ui, "/dashboard", None), redirect("/dashboard/", true));
        assert_eq!(route(ui, "/dashboard/", None), Route::UiIndex);
        // A pattern without a trailing slash matches exactly.
        assert_eq!(route("/app", "/app", None), Route::UiIndex);
        assert_eq!(route("/app", "/app/", None), Route::Root);
    }

    #[test]
    fn the_redirect_body_is_gos() {
        assert_eq!(
            redirect_body("/ui/"),
            "<a href=\"/ui/\">Moved Permanently</a>.\n\n"
        );
        assert_eq!(
            redirect_body("/ui/?a=1&b=\"2\""),
            "<a href=\"/ui/?a=1&amp;b=&#34;2&#34;\">Moved Permanently</a>.\n\n"
        );
    }
}
