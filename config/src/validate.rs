//! Reading and validating a config: every problem at once, with its JSON path; the checks the
//! schema cannot express (unique hostnames, files that exist, exactly one kind of code); the
//! hostname rules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::schema::schema_problems;
use crate::types::{App, AppFields, Config};

/// One thing wrong with a config: where (a JSON path such as `apps[0].limits.workers`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid JSON: {source}")]
    Syntax {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config file {path} has {} problem{}:\n{}", problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Reads, validates and resolves a config file. Relative entrypoints become absolute paths
/// resolved against the file's folder.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    parse(&text, &base).map_err(|err| match err {
        ParseError::Syntax(source) => ConfigError::Syntax {
            path: path.to_owned(),
            source,
        },
        ParseError::Invalid(problems) => ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        },
    })
}

/// Errors of [`parse`], before a file name is attached.
#[derive(Debug)]
pub enum ParseError {
    Syntax(serde_json::Error),
    Invalid(Vec<Problem>),
}

/// Parses config text whose relative paths are relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config, ParseError> {
    let raw: Value = serde_json::from_str(text).map_err(ParseError::Syntax)?;
    let problems = schema_problems(&raw);
    if !problems.is_empty() {
        return Err(ParseError::Invalid(problems));
    }
    let problems = code_problems(&raw);
    if !problems.is_empty() {
        return Err(ParseError::Invalid(problems));
    }
    let mut config: Config = serde_json::from_value(raw).map_err(|err| {
        // The schema accepted it, so this is a gap between schema and types: still say where.
        ParseError::Invalid(vec![Problem {
            path: String::new(),
            message: err.to_string(),
        }])
    })?;
    // `./x.js` joined to the base keeps the `.`; drop it so logs show a clean path.
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = base.join(&*path).components().collect();
        }
    };
    for app in &mut config.apps {
        resolve(app.code.path_mut());
    }
    config.slivers.cache_dir.as_mut().map(resolve);
    if let Some(control_plane) = &mut config.control_plane {
        control_plane.cache_dir.as_mut().map(resolve);
        control_plane.ca_cert.as_mut().map(resolve);
    }
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ParseError::Invalid(problems))
    }
}

impl Config {
    /// Checks the schema cannot express. Returns every problem found.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.server.max_buffered_body_bytes < self.server.max_body_bytes {
            problems.push(Problem {
                path: "server.max_buffered_body_bytes".into(),
                message: format!(
                    "{} is less than server.max_body_bytes ({}): the node could never hold one \
                     request of the largest size it accepts; raise it or lower max_body_bytes",
                    self.server.max_buffered_body_bytes, self.server.max_body_bytes
                ),
            });
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            let path = |field: &str| format!("apps[{i}].{field}");
            match normalize_hostname(&app.hostname) {
                Err(why) => problems.push(Problem {
                    path: path("hostname"),
                    message: format!("{:?} is not a valid hostname: {why}", app.hostname.as_str()),
                }),
                Ok(host) => {
                    if let Some(first) = seen.insert(host.clone(), i) {
                        problems.push(Problem {
                            path: path("hostname"),
                            message: format!(
                                "{host:?} is already served by apps[{first}]; hostnames must be \
                                 unique (case-insensitive)"
                            ),
                        });
                    }
                }
            }
            let file = app.code.path();
            if !file.is_file() {
                problems.push(Problem {
                    path: path(app.code.key()),
                    message: format!(
                        "{} does not exist or is not a file (relative paths are resolved \
                         against the config file's folder)",
                        file.display()
                    ),
                });
            }
        }
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        problems
    }

    /// The app serving `host` (already normalised by [`normalize_host_header`]).
    pub fn app_index(&self) -> BTreeMap<String, usize> {
        self.apps
            .iter()
            .enumerate()
            .filter_map(|(i, app)| normalize_hostname(&app.hostname).ok().map(|h| (h, i)))
            .collect()
    }
}

/// Lower-cases a configured hostname and checks its characters.
pub fn normalize_hostname(hostname: &str) -> Result<String, &'static str> {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err("it is empty");
    }
    if host.contains(':') {
        return Err("give the hostname without a port; the port is ignored when routing");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err("only letters, digits, '-', '_' and '.' are allowed");
    }
    if host.split('.').any(str::is_empty) {
        return Err("it has an empty label ('..' or a leading '.')");
    }
    Ok(host)
}

/// Normalises a request's `Host` value for routing: lower-cased, port and trailing dot removed.
pub fn normalize_host_header(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        // IPv6 literal: keep the brackets' content only.
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks an app's settings given outside a config file, without its code (the control plane
/// checks a deploy's spec this way; the code is the sliver beside it): schema bounds, types and
/// unknown keys, and the hostname. Problem paths are relative to the app (`limits.cpu_ms`).
pub fn check_settings(raw: Value) -> Result<(), Vec<Problem>> {
    parse_app(raw).map(drop)
}

fn parse_app(raw: Value) -> Result<AppFields, Vec<Problem>> {
    let strip = |mut problems: Vec<Problem>| {
        for problem in &mut problems {
            let path = problem
                .path
                .strip_prefix("apps[0]")
                .unwrap_or(&problem.path);
            problem.path = path.trim_start_matches('.').to_owned();
        }
        problems
    };
    let wrapped = serde_json::json!({ "apps": [raw] });
    let problems = schema_problems(&wrapped);
    if !problems.is_empty() {
        return Err(strip(problems));
    }
    let Value::Array(mut apps) = wrapped["apps"].clone() else {
        unreachable!("built as an array above")
    };
    let app: AppFields = serde_json::from_value(apps.remove(0)).map_err(|err| {
        vec![Problem {
            path: String::new(),
            message: err.to_string(),
        }]
    })?;
    if let Err(why) = normalize_hostname(&app.hostname) {
        return Err(vec![Problem {
            path: "hostname".into(),
            message: format!("{:?} is not a valid hostname: {why}", app.hostname.as_str()),
        }]);
    }
    Ok(app)
}

/// Checks one app given outside a config file, code included: what [`check_settings`] checks,
/// and exactly one of `entrypoint` and `sliver`.
pub fn check_app(raw: Value) -> Result<App, Vec<Problem>> {
    App::try_from(parse_app(raw)?).map_err(|problem| {
        vec![Problem {
            path: String::new(),
            message: problem.to_string(),
        }]
    })
}

/// `apps[i]` objects with both kinds of code or neither (before typed parsing, which needs
/// exactly one, so the problem is reported with its place).
fn code_problems(raw: &Value) -> Vec<Problem> {
    let Some(apps) = raw.get("apps").and_then(Value::as_array) else {
        return Vec::new();
    };
    apps.iter()
        .enumerate()
        .filter_map(|(i, app)| {
            let has = |key: &str| app.get(key).is_some_and(|v| !v.is_null());
            AppFields::code_problem(has("entrypoint"), has("sliver")).map(|problem| Problem {
                path: format!("apps[{i}]"),
                message: problem.to_string(),
            })
        })
        .collect()
}
