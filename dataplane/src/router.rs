//! Host -> app. Normalises the `Host` value (lower case, no port, no trailing dot) and finds the
//! app's pool; knows nothing about V8.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::AppPool;

/// One routable app: its pool and its per-request wall-clock limit.
pub struct Route {
    pub pool: AppPool,
    pub timeout: Duration,
}

/// The routing table, immutable once built.
#[derive(Default)]
pub struct Router {
    routes: HashMap<String, Arc<Route>>,
}

impl Router {
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        let routes = routes
            .into_iter()
            .map(|route| {
                (
                    nano_config::normalize_host_header(route.pool.hostname()),
                    Arc::new(route),
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
        Router::new(["api.example.com", "localhost"].map(|h| Route {
            pool: AppPool::failed(h.into(), "test".into()),
            timeout: Duration::from_secs(1),
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
