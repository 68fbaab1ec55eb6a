//! Host -> app. Normalises the `Host` value (lower case, no port, no trailing dot) and finds the
//! app's pool; knows nothing about V8.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::AppPool;

/// One routable app: its pool, its per-request wall-clock limit, and what it was built from.
pub struct Route {
    pub pool: AppPool,
    pub timeout: Duration,
    /// The config the app was started with.
    pub app: nano_config::App,
    /// Every module file as (name, sha256) when it was prepared.
    pub files: Vec<(String, String)>,
    /// A digest of its sources (see `reload`), `None` if it failed to load.
    pub fingerprint: Option<String>,
    /// WebSockets of this version of the app open now (bounded by `websockets.max_sockets`).
    pub sockets: Arc<std::sync::atomic::AtomicUsize>,
}

/// The routing table in force, swapped atomically on reload.
pub type Routing = arc_swap::ArcSwap<Router>;

/// The routing table, immutable once built.
#[derive(Default)]
pub struct Router {
    routes: HashMap<String, Arc<Route>>,
}

impl Router {
    pub fn from_routes(routes: impl IntoIterator<Item = Arc<Route>>) -> Self {
        let routes = routes
            .into_iter()
            .map(|route| {
                (
                    nano_config::normalize_host_header(route.pool.hostname()),
                    route,
                )
            })
            .collect();
        Self { routes }
    }

    /// The app for a raw `Host` header value (or HTTP/2 authority).
    pub fn route(&self, host: &str) -> Option<&Arc<Route>> {
        self.routes.get(&nano_config::normalize_host_header(host))
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// Takes the routes out so their pools can be shut down.
    pub fn into_routes(self) -> Vec<Arc<Route>> {
        self.routes.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::from_routes(["api.example.com", "localhost"].map(|h| {
            Arc::new(Route {
                pool: AppPool::failed(h.into(), "test".into()),
                timeout: Duration::from_secs(1),
                app: nano_config::App {
                    hostname: h.into(),
                    code: nano_config::AppCode::Module("app.js".into()),
                    limits: Default::default(),
                    env: Default::default(),
                    fetch: Default::default(),
                    websockets: Default::default(),
                    context_reset: true,
                },
                files: Vec::new(),
                fingerprint: None,
                sockets: Default::default(),
            })
        }))
    }

    #[test]
    fn host_variants_route_to_the_same_app() {
        let router = router();
        for host in [
            "api.example.com",
            "API.Example.COM",
            "api.example.com:8080",
            "api.example.com.",
        ] {
            let route = router
                .route(host)
                .unwrap_or_else(|| panic!("{host} should route"));
            assert_eq!(route.pool.hostname(), "api.example.com");
        }
        assert!(router.route("localhost:1234").is_some());
    }

    #[test]
    fn unknown_hosts_do_not_route() {
        let router = router();
        for host in [
            "example.com",
            "api.example.com.evil",
            "",
            "x.api.example.com",
        ] {
            assert!(router.route(host).is_none(), "{host}");
        }
    }
}
