//! Mounting handlers under path prefixes.

use super::{Handler, Request, Response};

/// Dispatches requests to handlers mounted under path prefixes.
///
/// Prefixes match on segment boundaries (`/static` matches `/static` and
/// `/static/app.css`, never `/staticfoo`) and the longest matching prefix wins, so
/// `mount("/", mirror)` beside `mount("/-", status)` sends `/-/metrics` to the status
/// handler and everything else to the mirror. The handler sees the prefix in
/// [`Request::script_name`] and the rest in [`Request::path_info`], as WSGI
/// applications do; routers nest. Requests no prefix matches get 404.
///
/// ```
/// use package_cache::http::{Request, Response, Router, Handler};
///
/// let router = Router::new()
///     .mount("/", |_: &mut Request| Response::text(200, "mirror"))
///     .mount("/-", |req: &mut Request| Response::text(200, format!("status {}", req.path_info())));
/// let resp = router.handle(&mut Request::get("/-/metrics"));
/// assert_eq!(resp.into_bytes().unwrap(), b"status /metrics\n");
/// ```
#[derive(Default)]
pub struct Router {
    // Sorted by descending prefix length, so the first match is the longest.
    mounts: Vec<(String, Box<dyn Handler>)>,
}

impl Router {
    /// A router with nothing mounted.
    pub fn new() -> Router {
        Router { mounts: Vec::new() }
    }

    /// Mounts `handler` under `prefix` (`"/"` for everything; a trailing `/` is
    /// ignored). Mounting the same prefix twice replaces the first handler.
    pub fn mount(mut self, prefix: &str, handler: impl Handler) -> Router {
        let prefix = normalise(prefix);
        self.mounts.retain(|(p, _)| *p != prefix);
        self.mounts.push((prefix, Box::new(handler)));
        self.mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// The handler whose prefix matches `path_info`, with the length of that prefix.
    fn route(&self, path_info: &str) -> Option<(usize, &dyn Handler)> {
        self.mounts.iter().find_map(|(prefix, handler)| {
            let matched = prefix.is_empty()
                || (path_info.starts_with(prefix.as_str())
                    && matches!(path_info.as_bytes().get(prefix.len()), None | Some(b'/')));
            matched.then_some((prefix.len(), handler.as_ref()))
        })
    }
}

impl Handler for Router {
    fn handle(&self, req: &mut Request) -> Response {
        match self.route(req.path_info()) {
            Some((len, handler)) => {
                req.shift(len);
                let response = handler.handle(req);
                req.unshift(len);
                response
            }
            None => Response::error(404),
        }
    }
}

/// `/` → ``, `/static/` → `/static`, `static` → `/static`.
fn normalise(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(name: &'static str) -> impl Handler {
        move |req: &mut Request| {
            Response::text(
                200,
                format!("{name} {} {}", req.script_name(), req.path_info()),
            )
        }
    }

    fn body(router: &Router, path: &str) -> (u16, String) {
        let resp = router.handle(&mut Request::get(path));
        let status = resp.status();
        (
            status,
            String::from_utf8(resp.into_bytes().unwrap()).unwrap(),
        )
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = Router::new()
            .mount("/", echo("root"))
            .mount("/static/", echo("static"))
            .mount("/static/img", echo("img"));
        assert_eq!(body(&r, "/static"), (200, "static /static \n".into()));
        assert_eq!(
            body(&r, "/static/a.css"),
            (200, "static /static /a.css\n".into())
        );
        assert_eq!(body(&r, "/staticfoo"), (200, "root  /staticfoo\n".into()));
        assert_eq!(
            body(&r, "/static/img/x.png"),
            (200, "img /static/img /x.png\n".into())
        );
        assert_eq!(
            body(&r, "/static/imgs"),
            (200, "static /static /imgs\n".into())
        );
    }

    #[test]
    fn unmatched_is_404_and_nesting_works() {
        let inner = Router::new().mount("/b", echo("inner"));
        let r = Router::new().mount("/a", inner);
        assert_eq!(body(&r, "/a/b/c"), (200, "inner /a/b /c\n".into()));
        assert_eq!(body(&r, "/a/x").0, 404);
        assert_eq!(body(&r, "/z").0, 404);
    }

    #[test]
    fn request_is_restored_after_dispatch() {
        let r = Router::new().mount("/a", echo("a"));
        let mut req = Request::get("/a/b");
        r.handle(&mut req);
        assert_eq!((req.script_name(), req.path_info()), ("", "/a/b"));
    }
}
