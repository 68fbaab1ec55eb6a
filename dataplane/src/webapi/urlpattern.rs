//! `URLPattern` (WHATWG URL Pattern standard), parsed by the `urlpattern` crate: the ops turn a
//! pattern into its components' regular expressions and an input into its URL components; the
//! JS side (js/extras.js) matches them with V8's own RegExp, where the CPU limit reaches.
//!
//! Both ops speak JSON: the pattern or input arrives as the JSON of a string or of a
//! URLPatternInit, and the answer is the JSON the crate's `quirks` module defines.

use urlpattern::quirks::{self, StringOrInit};
use urlpattern::{RegexSyntax, UrlPatternOptions};

use super::{string_arg, throw_type_error};

fn parse_input(
    scope: &mut v8::HandleScope,
    args: &v8::FunctionCallbackArguments,
) -> Result<(StringOrInit<'static>, Option<String>), String> {
    let input = string_arg(scope, args, 0);
    let input: StringOrInit = serde_json::from_str(&input)
        .map_err(|err| format!("the input must be a string or a URLPatternInit ({err})"))?;
    let base = args.get(1);
    let base = (!base.is_undefined()).then(|| base.to_rust_string_lossy(scope));
    Ok((input, base))
}

fn answer(scope: &mut v8::HandleScope, mut rv: v8::ReturnValue, json: String) {
    match v8::String::new(scope, &json) {
        Some(text) => rv.set(text.into()),
        None => throw_type_error(scope, "URLPattern: the pattern is too large"),
    }
}

/// `urlPatternParse(inputJson, baseURL, ignoreCase)`: the pattern's components as JSON.
pub(super) fn op_parse(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    rv: v8::ReturnValue,
) {
    let ignore_case = args.get(2).boolean_value(scope);
    let parsed = parse_input(scope, &args).and_then(|(input, base)| {
        let init = quirks::process_construct_pattern_input(input, base.as_deref())
            .map_err(|err| err.to_string())?;
        let options = UrlPatternOptions {
            regex_syntax: RegexSyntax::EcmaScript,
            ignore_case,
        };
        let pattern = quirks::parse_pattern::<quirks::EcmaRegexp>(init, options)
            .map_err(|err| err.to_string())?;
        serde_json::to_string(&pattern).map_err(|err| err.to_string())
    });
    match parsed {
        Ok(json) => answer(scope, rv, json),
        Err(err) => throw_type_error(scope, &format!("URLPattern: {err}")),
    }
}

/// `urlPatternInput(inputJson, baseURL)`: the input's URL components and the inputs as given,
/// as JSON `[components, [input, baseURL]]`; undefined when the input is no URL (no match).
pub(super) fn op_input(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    rv: v8::ReturnValue,
) {
    let processed = parse_input(scope, &args).and_then(|(input, base)| {
        quirks::process_match_input(input, base.as_deref()).map_err(|err| err.to_string())
    });
    match processed {
        Ok(Some((input, inputs))) => {
            let Some(components) = quirks::parse_match_input(input) else {
                return;
            };
            match serde_json::to_string(&(components, inputs)) {
                Ok(json) => answer(scope, rv, json),
                Err(err) => throw_type_error(scope, &format!("URLPattern: {err}")),
            }
        }
        Ok(None) => {}
        Err(err) => throw_type_error(scope, &format!("URLPattern: {err}")),
    }
}
