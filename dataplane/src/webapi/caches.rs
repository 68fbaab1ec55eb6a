//! The Cache API's ops: `js/cache.js` checks the arguments as workerd does and calls these with
//! plain values; the entries live in the node's store (`crate::cache`), under the app's
//! hostname, which JS cannot choose.

use std::sync::Arc;

use super::{bytes_of, headers_arg, host, refuse_outside_a_request, string_arg, uint8_array};
use crate::cache::{Conditions, PutError, STORE};

/// Longest cache name `caches.open` takes.
const MAX_NAME_BYTES: usize = 1024;

/// The app's hostname and the cache name of an op's first argument; `None` (with a TypeError
/// thrown) outside a request or for a name that is too long.
fn partition(
    scope: &mut v8::HandleScope,
    args: &v8::FunctionCallbackArguments,
    what: &str,
) -> Option<(Arc<str>, String)> {
    if refuse_outside_a_request(scope, what) {
        return None;
    }
    let name = string_arg(scope, args, 0);
    if name.len() > MAX_NAME_BYTES {
        super::throw_type_error(
            scope,
            &format!("caches.open: a cache name is at most {MAX_NAME_BYTES} bytes long"),
        );
        return None;
    }
    let hostname = host::state(scope).borrow().hostname.clone();
    Some((hostname, name))
}

/// An optional string argument (`null` or `undefined`: none).
fn optional(scope: &mut v8::HandleScope, value: v8::Local<v8::Value>) -> Option<String> {
    (!value.is_null_or_undefined()).then(|| value.to_rust_string_lossy(scope))
}

/// `cachePut(name, url, status, [name, value, ...], bytes)`: stores the response if its headers
/// allow (else nothing happens, as on Workers); a response over the app's whole quota throws.
pub(super) fn op_cache_put(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let Some((app, name)) = partition(scope, &args, "Cache.put()") else {
        return;
    };
    let url = string_arg(scope, &args, 1);
    let status = args.get(2).uint32_value(scope).unwrap_or(200) as u16;
    let headers = headers_arg(scope, args.get(3));
    let body = bytes_of(args.get(4)).unwrap_or_default();
    match STORE.put(&app, &name, &url, status, headers, body.into()) {
        Ok(()) => {}
        Err(PutError::NotStorable(why)) => {
            tracing::debug!(hostname = %app, why, "Cache.put: response not stored");
        }
        Err(PutError::TooLarge { size, quota }) => {
            let message = super::message_string(
                scope,
                &format!(
                    "Cache.put: the response takes {size} bytes, more than this app's whole \
                     cache quota of {quota} bytes (cache.app_quota_mb in the node's config); \
                     cache smaller responses or raise the quota"
                ),
            );
            let exception = v8::Exception::error(scope, message);
            scope.throw_exception(exception);
        }
    }
}

/// `cacheMatch(name, url, ifNoneMatch, ifModifiedSince, range)`: `[status, [name, value, ...],
/// bytes or null]`, or undefined when nothing fresh is stored.
pub(super) fn op_cache_match(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let Some((app, name)) = partition(scope, &args, "Cache.match()") else {
        return;
    };
    let url = string_arg(scope, &args, 1);
    let if_none_match = optional(scope, args.get(2));
    let if_modified_since = optional(scope, args.get(3));
    let range = optional(scope, args.get(4));
    let conditions = Conditions {
        if_none_match: if_none_match.as_deref(),
        if_modified_since: if_modified_since.as_deref(),
        range: range.as_deref(),
    };
    let Some(hit) = STORE.lookup(&app, &name, &url, &conditions) else {
        return;
    };
    let status = v8::Integer::new(scope, i32::from(hit.status)).into();
    let mut flat = Vec::with_capacity(hit.headers.len() * 2);
    for (name, value) in &hit.headers {
        for text in [name, value] {
            match v8::String::new(scope, text) {
                Some(text) => flat.push(text.into()),
                None => return,
            }
        }
    }
    let headers = v8::Array::new_with_elements(scope, &flat).into();
    let body = match hit.body {
        // Charged to the isolate like any bytes it holds.
        Some(body) => uint8_array(scope, body.to_vec()).into(),
        None => v8::null(scope).into(),
    };
    rv.set(v8::Array::new_with_elements(scope, &[status, headers, body]).into());
}

/// `cacheDelete(name, url)`: whether an entry was removed.
pub(super) fn op_cache_delete(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let Some((app, name)) = partition(scope, &args, "Cache.delete()") else {
        return;
    };
    let url = string_arg(scope, &args, 1);
    rv.set_bool(STORE.delete(&app, &name, &url));
}
