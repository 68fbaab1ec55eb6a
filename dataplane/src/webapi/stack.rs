//! Error stacks as on workerd: the runtime's own frames (its scripts are named `nano:…`) are
//! left out, as workerd's C++ never appears in a stack, and an app's `Error.prepareStackTrace`
//! gets only the app's call sites.
//!
//! V8 calls [`prepare_stack_trace`] the first time an error's `stack` is read (and for
//! `Error.captureStackTrace`); registering it turns off V8's own `Error.prepareStackTrace`, which
//! it therefore calls itself. What it runs is app code (a `prepareStackTrace`, getters on `name`
//! or `message`, a replaced `CallSite.prototype.toString`): an exception it throws is rethrown to
//! the code reading `stack`, and a termination (a limit) is left to end the request.

/// The prefix of the runtime's script names (`nano:runtime.js`, `nano:subtle.js`...).
const RUNTIME_SCRIPT: &str = "nano:";

pub fn prepare_stack_trace<'s>(
    scope: &mut v8::HandleScope<'s>,
    error: v8::Local<'s, v8::Value>,
    sites: v8::Local<'s, v8::Array>,
) -> v8::Local<'s, v8::Value> {
    let tc = &mut v8::TryCatch::new(scope);
    let stack = format(tc, error, sites);
    if tc.has_caught() && tc.can_continue() {
        tc.rethrow();
    }
    stack.unwrap_or_else(|| v8::undefined(tc).into())
}

fn format<'s>(
    scope: &mut v8::HandleScope<'s>,
    error: v8::Local<'s, v8::Value>,
    sites: v8::Local<'s, v8::Array>,
) -> Option<v8::Local<'s, v8::Value>> {
    let kept = v8::Array::new(scope, 0);
    let mut count = 0;
    for i in 0..sites.length() {
        let site = sites.get_index(scope, i)?;
        let file = call(scope, site, "getFileName")?;
        if file.is_string() && file.to_rust_string_lossy(scope).starts_with(RUNTIME_SCRIPT) {
            continue;
        }
        kept.set_index(scope, count, site)?;
        count += 1;
    }
    // The app's own formatter, as V8 would call it: Error.prepareStackTrace(error, sites).
    let global = scope.get_current_context().global(scope);
    if let Some(error_class) = get(scope, global.into(), "Error").filter(|e| e.is_object())
        && let Some(hook) = get(scope, error_class, "prepareStackTrace")
        && let Ok(hook) = v8::Local::<v8::Function>::try_from(hook)
    {
        return hook.call(scope, error_class, &[error, kept.into()]);
    }
    // V8's own format: "Name: message" (an exception while reading them is shown in its place,
    // as V8 does), then a line per call site.
    let mut text = {
        let tc = &mut v8::TryCatch::new(scope);
        match header(tc, error) {
            Some(text) => text,
            None if tc.has_terminated() => return None,
            None => {
                let thrown = tc.exception()?;
                let thrown = thrown.to_string(tc)?.to_rust_string_lossy(tc);
                format!("<error: {thrown}>")
            }
        }
    };
    for i in 0..count {
        let site = kept.get_index(scope, i)?;
        let line = call(scope, site, "toString")?;
        text.push_str("\n    at ");
        text.push_str(&line.to_rust_string_lossy(scope));
    }
    v8::String::new(scope, &text).map(Into::into)
}

/// What Error.prototype.toString makes of `error`, as V8's default stack begins.
fn header<'s>(scope: &mut v8::HandleScope<'s>, error: v8::Local<'s, v8::Value>) -> Option<String> {
    if !error.is_object() {
        return Some(error.to_string(scope)?.to_rust_string_lossy(scope));
    }
    let name = member_text(scope, error, "name", "Error")?;
    let message = member_text(scope, error, "message", "")?;
    Some(match (name.is_empty(), message.is_empty()) {
        (true, _) => message,
        (false, true) => name,
        (false, false) => format!("{name}: {message}"),
    })
}

/// `String(error[name])`, or `fallback` when it is undefined.
fn member_text<'s>(
    scope: &mut v8::HandleScope<'s>,
    error: v8::Local<'s, v8::Value>,
    name: &str,
    fallback: &str,
) -> Option<String> {
    let value = get(scope, error, name)?;
    if value.is_undefined() {
        return Some(fallback.to_owned());
    }
    Some(value.to_string(scope)?.to_rust_string_lossy(scope))
}

fn get<'s>(
    scope: &mut v8::HandleScope<'s>,
    object: v8::Local<'s, v8::Value>,
    name: &str,
) -> Option<v8::Local<'s, v8::Value>> {
    let object = object.to_object(scope)?;
    let key = v8::String::new(scope, name)?;
    object.get(scope, key.into())
}

/// `object[name]()`.
fn call<'s>(
    scope: &mut v8::HandleScope<'s>,
    object: v8::Local<'s, v8::Value>,
    name: &str,
) -> Option<v8::Local<'s, v8::Value>> {
    let method = get(scope, object, name)?;
    let method = v8::Local::<v8::Function>::try_from(method).ok()?;
    method.call(scope, object, &[])
}
