//! NANO's config contract: the types of `config.json`, their defaults and bounds, validation that
//! reports every problem at once with its JSON path, and the JSON Schema editors can use.
//!
//! The schema generated from these types is the single source of truth for key names, types and
//! numeric bounds: [`load`] validates the raw JSON against it before deserialising, so unknown keys,
//! wrong types and out-of-range values are all reported together. Checks a schema cannot express
//! (unique hostnames, files that must exist) follow in [`Config::validate`].
//!
//! `types`: the structs and their defaults. `validate`: loading, every problem, hostnames.
//! `schema`: the JSON Schema and its errors as sentences.

mod schema;
mod types;
mod validate;

pub use schema::json_schema;
pub use types::*;
pub use validate::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use serde_json::Value;

    fn dir_with_app() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "export default {}").unwrap();
        dir
    }

    fn problems(text: &str) -> Vec<Problem> {
        let dir = dir_with_app();
        match parse(text, dir.path()) {
            Err(ParseError::Invalid(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn spec_example_parses_with_defaults() {
        let dir = dir_with_app();
        let config = parse(
            r#"{"server":{"port":8080,"host":"0.0.0.0"},
                "apps":[{"hostname":"api.example.com","entrypoint":"./app.js",
                         "limits":{"workers":4,"memory_mb":128,"timeout_secs":30,"cpu_ms":50}}],
                "slivers":{"enabled":true,"cache_size":100}}"#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.apps[0].limits.queue_per_worker, 256);
        assert!(config.apps[0].context_reset);
        assert!(config.apps[0].code.path().is_file());
        let minimal = parse(
            r#"{"apps":[{"hostname":"a","entrypoint":"app.js"}]}"#,
            dir.path(),
        );
        let minimal = minimal.unwrap();
        assert_eq!(minimal.server, Server::default());
        assert_eq!(minimal.apps[0].limits, Limits::default());
    }

    #[test]
    fn control_plane_url_is_one_address_or_a_list_of_replicas() {
        let dir = dir_with_app();
        let one = parse(r#"{"control_plane":{"url":"http://cp:7070"}}"#, dir.path()).unwrap();
        assert_eq!(
            one.control_plane.unwrap().url.list(),
            vec!["http://cp:7070".to_string()]
        );
        let many = parse(
            r#"{"control_plane":{"url":["http://cp-1:7070","http://cp-2:7070"]}}"#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(many.control_plane.unwrap().url.list().len(), 2);
        for bad in [
            r#"{"control_plane":{"url":[]}}"#,
            r#"{"control_plane":{"url":[""]}}"#,
            r#"{"control_plane":{"url":7070}}"#,
        ] {
            let found = problems(bad);
            assert!(
                found
                    .iter()
                    .any(|p| p.path.starts_with("control_plane.url")),
                "{bad}: {found:#?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = problems(
            r#"{"server":{"port":"80","hots":"x"},
                "apps":[{"hostname":"A.com","entrypoint":"missing.js","limits":{"workers":65,"cpu_ms":0}},
                        {"hostname":"a.com","entrypoint":"app.js","wrkers":2}],
                "extra":1}"#,
        );
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let has = |path: &str, needle: &str| {
            assert!(
                found
                    .iter()
                    .any(|p| p.path == path && p.message.contains(needle)),
                "no problem at {path} containing {needle:?} in {text:#?}"
            )
        };
        has("", "unknown key \"extra\"");
        has("server", "unknown key \"hots\"");
        has("server.port", "wrong type");
        has(
            "apps[0].limits.workers",
            "65 is out of range; allowed 1 to 64",
        );
        has(
            "apps[0].limits.cpu_ms",
            "0 is out of range; allowed 1 to 60000",
        );
        has("apps[1]", "unknown key \"wrkers\"");
    }

    #[test]
    fn semantic_problems_are_reported_together() {
        let found = problems(
            r#"{"apps":[{"hostname":"A.com","entrypoint":"missing.js"},
                        {"hostname":"a.com","entrypoint":"app.js"},
                        {"hostname":"b.com:80","entrypoint":"app.js"}]}"#,
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(found[0].path, "apps[0].entrypoint");
        assert_eq!(found[1].path, "apps[1].hostname");
        assert!(found[1].message.contains("already served by apps[0]"));
        assert_eq!(found[2].path, "apps[2].hostname");
        assert!(found[2].message.contains("without a port"));
    }

    #[test]
    fn exactly_one_of_entrypoint_and_sliver() {
        let both =
            problems(r#"{"apps":[{"hostname":"a","entrypoint":"app.js","sliver":"app.js"}]}"#);
        assert!(both[0].message.contains("not both"), "{both:?}");
        let neither = problems(r#"{"apps":[{"hostname":"a"}]}"#);
        assert!(neither[0].message.contains("\"entrypoint\""), "{neither:?}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let found = problems(r#"{"apps":[{"entrypoint":"app.js"}]}"#);
        assert_eq!(found[0].path, "apps[0]");
        assert!(found[0].message.contains("hostname"), "{found:?}");
    }

    #[test]
    fn host_header_normalisation() {
        for (input, want) in [
            ("Example.COM", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("EXAMPLE.com.:443", "example.com"),
            ("[::1]:8080", "::1"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(normalize_host_header(input), want, "{input}");
        }
    }

    #[test]
    fn every_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![dir.join("example.json")];
        for entry in std::fs::read_dir(dir.join("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        for file in files {
            load(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        }
    }

    #[test]
    fn hostnames_are_normalised_when_read() {
        let app =
            check_app(serde_json::json!({ "hostname": "API.Example.COM.", "sliver": "a.sliver" }))
                .unwrap();
        assert_eq!(app.hostname.as_str(), "api.example.com");
        let bad =
            check_app(serde_json::json!({ "hostname": "A B", "sliver": "a.sliver" })).unwrap_err();
        assert_eq!(bad[0].path, "hostname");
        assert!(
            bad[0]
                .message
                .starts_with("\"a b\" is not a valid hostname"),
            "{bad:?}"
        );
    }

    #[test]
    fn an_app_outside_a_config_needs_exactly_one_kind_of_code() {
        let app = |extra: Value| {
            let mut raw = serde_json::json!({ "hostname": "a.test", "limits": { "workers": 1 } });
            raw.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            raw
        };
        assert!(
            check_settings(app(serde_json::json!({}))).is_ok(),
            "settings alone"
        );
        assert!(check_app(app(serde_json::json!({}))).is_err(), "no code");
        let both = serde_json::json!({ "entrypoint": "a.js", "sliver": "a.sliver" });
        assert!(check_app(app(both)).is_err(), "both");
        let sliver = check_app(app(serde_json::json!({ "sliver": "a.sliver" }))).unwrap();
        assert_eq!(sliver.code, AppCode::Sliver("a.sliver".into()));
    }

    #[test]
    fn misspelled_key_fixture_fails() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/misspelled.json");
        let err = load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("apps[0].limits: unknown key \"cpu_msec\""),
            "{err}"
        );
    }

    /// Every key of the config types (walked through the generated schema, so a new field is
    /// in it at once): described, unknown keys refused beside it, and named in the README's
    /// config reference.
    #[test]
    fn schema_describes_every_key() {
        let schema = json_schema();
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .expect("the README is beside the workspace");
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        walk_schema(&schema, &schema, "", &mut keys, &mut problems);
        for key in &keys {
            if !readme.contains(&format!("`{key}`")) {
                problems.push(format!("{key}: not in the README's config reference"));
            }
        }
        // The walk reaches the leaves, not only the sections.
        for key in [
            "server.port",
            "apps[].limits.cpu_ms",
            "apps[].fetch.max_subrequests",
        ] {
            assert!(
                keys.iter().any(|k| k == key),
                "the walk missed {key}: {keys:?}"
            );
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Follows `$ref`, `anyOf` (an `Option`) and `items` (a list) down to object schemas, and
    /// lists every property's path (`apps[].limits.cpu_ms`), checking each object on the way.
    fn walk_schema(
        root: &Value,
        node: &Value,
        path: &str,
        keys: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let target = root
                .pointer(target.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{path}: dangling {target}"));
            return walk_schema(root, target, path, keys, problems);
        }
        for branch in node
            .get("anyOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(root, branch, path, keys, problems);
        }
        if let Some(items) = node.get("items") {
            walk_schema(root, items, &format!("{path}[]"), keys, problems);
        }
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        if node.get("additionalProperties") != Some(&Value::Bool(false)) {
            problems.push(format!("{path}: unknown keys are not refused"));
        }
        for (name, property) in properties {
            let key = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let described = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                problems.push(format!("{key}: no description"));
            }
            let before = keys.len();
            walk_schema(root, property, &key, keys, problems);
            // Sections (objects, lists of objects) are named by their keys; leaves by their own.
            if keys.len() == before {
                keys.push(key);
            }
        }
    }
}
