//! The API's routes in one table: [`Collect::router`](crate::Collect::router) is built from
//! it, and the test comparing the server with `docs/openapi.yaml` reads it, so the two cannot
//! drift apart. Paths are axum templates (`{name}` matches one non-empty segment); a path no
//! route matches is a JSON 404 and another method on a known path a JSON 405 with `Allow`
//! (the edge layer, `pushcluster_server::http`).

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /v1/messages`.
    Submit,
    /// `GET /v1/messages/{id}`.
    Status,
    /// `POST /v1/devices`.
    RegisterDevice,
    /// `GET /v1/devices?user=U`.
    ListDevices,
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
    route("GET", "/v1/devices", Op::ListDevices),
    route("DELETE", "/v1/devices/{token}", Op::DeleteDevice),
    route("GET", "/openapi.yaml", Op::OpenApi),
];

/// The OpenAPI 3.1 description of [`ROUTES`], served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

#[cfg(test)]
mod tests;
