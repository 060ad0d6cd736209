//! The API's routes in one table: [`Collect::handle`](crate::Collect::handle) dispatches through
//! it, and the test comparing the server with `docs/openapi.yaml` reads it, so the two cannot
//! drift apart. A path that matches no route is not ours (`None`: the caller answers 404); a
//! path that matches with another method is a 405 whose `Allow` lists the table's methods.

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /v1/messages`.
    Submit,
    /// `GET /v1/messages/{id}`.
    Status,
    /// `POST /v1/devices`.
    RegisterDevice,
    /// `DELETE /v1/devices/{token}`.
    DeleteDevice,
    /// `GET /openapi.yaml`: the spec itself, no API key needed.
    OpenApi,
}

/// One route: method, path template (`{name}` matches one non-empty segment), operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub op: Op,
}

impl Route {
    /// Whether the route needs `Authorization: Bearer <api key>`.
    pub fn needs_api_key(&self) -> bool {
        self.op != Op::OpenApi
    }
}

const fn route(method: &'static str, path: &'static str, op: Op) -> Route {
    Route { method, path, op }
}

/// Every route of the HTTP API.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/messages", Op::Submit),
    route("GET", "/v1/messages/{id}", Op::Status),
    route("POST", "/v1/devices", Op::RegisterDevice),
    route("DELETE", "/v1/devices/{token}", Op::DeleteDevice),
    route("GET", "/openapi.yaml", Op::OpenApi),
];

/// The OpenAPI 3.1 description of [`ROUTES`], served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// The result of looking a request up in [`ROUTES`].
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// The route, and the path's `{parameter}` segment if its template has one.
    Route(&'static Route, Option<&'a str>),
    /// The path is ours but not with this method; the value is the `Allow` header.
    WrongMethod(String),
    /// Not an API path.
    NotOurs,
}

/// Looks `method path` up (one trailing slash is ignored).
pub fn find<'a>(method: &str, path: &'a str) -> Found<'a> {
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let mut allow: Vec<&str> = Vec::new();
    for r in ROUTES {
        let Some(param) = matches(r.path, path) else {
            continue;
        };
        if r.method == method {
            return Found::Route(r, param);
        }
        if !allow.contains(&r.method) {
            allow.push(r.method);
        }
    }
    if allow.is_empty() {
        Found::NotOurs
    } else {
        Found::WrongMethod(allow.join(", "))
    }
}

/// `Some(param)` when `path` fits `template`.
fn matches<'a>(template: &str, path: &'a str) -> Option<Option<&'a str>> {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    let mut param = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(param),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                param = Some(ps);
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
