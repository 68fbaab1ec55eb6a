//! The JSON Schema of the config, and schema errors turned into sentences: what is wrong and
//! what is allowed.

use serde_json::Value;

use crate::types::Config;
use crate::validate::Problem;

/// The JSON Schema of the config file (draft 2020-12).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a generated schema is valid JSON")
}

pub(crate) fn schema_problems(raw: &Value) -> Vec<Problem> {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the generated schema compiles");
    let mut problems = Vec::new();
    for err in validator.iter_errors(raw) {
        problems_of(&schema, &err, &mut problems);
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup();
    problems
}

/// The problems one schema error stands for. An `anyOf` (an `Option`, or a key that takes
/// several forms) is replaced by the errors of the alternative the value's type matches, so the
/// sentence names the key inside that is wrong; if no alternative takes the value's type, the
/// sentence lists the types allowed.
fn problems_of(schema: &Value, err: &jsonschema::ValidationError<'_>, out: &mut Vec<Problem>) {
    use jsonschema::error::{TypeKind, ValidationErrorKind as Kind};
    let pointer = err.instance_path().as_str().to_owned();
    if let Kind::AnyOf { context } = err.kind() {
        let mismatched = |e: &jsonschema::ValidationError<'_>| {
            matches!(e.kind(), Kind::Type { .. }) && e.instance_path().as_str() == pointer
        };
        if let Some(alternative) = context.iter().find(|alt| !alt.iter().any(mismatched)) {
            for inner in alternative {
                problems_of(schema, inner, out);
            }
            return;
        }
        let mut allowed: Vec<String> = context
            .iter()
            .flatten()
            .filter_map(|e| match e.kind() {
                Kind::Type {
                    kind: TypeKind::Single(t),
                } => Some(t.to_string()),
                _ => None,
            })
            .filter(|t| t != "null")
            .collect();
        allowed.dedup();
        out.push(Problem {
            path: pointer_to_path(&pointer),
            message: format!(
                "{} has the wrong type; expected {}",
                err.instance(),
                allowed.join(" or ")
            ),
        });
        return;
    }
    out.push(Problem {
        path: pointer_to_path(&pointer),
        message: describe(schema, &pointer, err),
    });
}

/// Turns one schema error into a sentence: what is wrong and what is allowed.
fn describe(schema: &Value, pointer: &str, err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let value = err.instance();
    match err.kind() {
        Kind::Minimum { .. } | Kind::Maximum { .. } => {
            let node = subschema(schema, pointer);
            let min = node.and_then(|n| n.get("minimum")).map(Value::to_string);
            let max = node.and_then(|n| n.get("maximum")).map(Value::to_string);
            format!(
                "{value} is out of range; allowed {} to {}",
                min.unwrap_or_else(|| "-inf".into()),
                max.unwrap_or_else(|| "+inf".into())
            )
        }
        Kind::AdditionalProperties { unexpected } => {
            let node = subschema(schema, pointer);
            let known: Vec<String> = node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|props| props.keys().cloned().collect())
                .unwrap_or_default();
            let unexpected: Vec<String> = unexpected.iter().map(|k| format!("{k:?}")).collect();
            format!(
                "unknown key {}; known keys here: {}",
                unexpected.join(", "),
                known.join(", ")
            )
        }
        Kind::Required { property } => format!("missing required key {property}"),
        Kind::Type { .. } => {
            let expected = subschema(schema, pointer)
                .and_then(|n| n.get("type"))
                .map(|t| t.to_string())
                .unwrap_or_else(|| "another type".into());
            format!("{value} has the wrong type; expected {expected}")
        }
        _ => err.to_string(),
    }
}

/// The schema node describing the value at a JSON pointer (following `$ref`s into `$defs`).
fn subschema<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let resolve = |mut node: &'a Value| -> Option<&'a Value> {
        for _ in 0..8 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => node = root.pointer(r.trim_start_matches('#'))?,
                None => {
                    // Option<T> and defaults show up as allOf/anyOf of a single $ref.
                    if let Some(inner) = ["allOf", "anyOf"]
                        .iter()
                        .find_map(|k| node.get(*k).and_then(Value::as_array))
                        .and_then(|alts| alts.iter().find(|a| a.get("$ref").is_some()))
                    {
                        node = inner;
                        continue;
                    }
                    return Some(node);
                }
            }
        }
        Some(node)
    };
    let mut node = resolve(root)?;
    for segment in pointer.split('/').skip(1) {
        node = if segment.parse::<usize>().is_ok() && node.get("items").is_some() {
            resolve(node.get("items")?)?
        } else {
            resolve(node.get("properties")?.get(segment)?)?
        };
    }
    Some(node)
}

/// `/apps/0/limits/workers` -> `apps[0].limits.workers`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}
