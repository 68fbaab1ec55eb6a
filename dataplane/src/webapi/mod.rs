//! The Rust half of the Web APIs: the native "ops" that the runtime JS (`js/runtime/`) calls, and the list of
//! external references V8 needs to put them in (and restore them from) a snapshot.
//!
//! Ops find the worker's state through the isolate slot (`host`: the state they work on, which
//! the worker loop in `isolate` drives); they never keep V8 handles beyond the call, and every
//! refusal is a JS exception of the standard type.

mod caches;
pub(crate) mod codec;
mod crypto;
pub mod fetch;
pub(crate) mod host;
pub(crate) mod stack;
mod urlpattern;
pub(crate) mod wasm_limits;
pub(crate) mod websocket;

use caches::{op_cache_delete, op_cache_match, op_cache_put};
use urlpattern::{op_input as op_url_pattern_input, op_parse as op_url_pattern_parse};
use websocket::{op_ws_accept, op_ws_close, op_ws_connect, op_ws_send};

use std::time::Duration;

use crate::limits::memory;
use crate::text::truncated;
use host::Reply;

/// The JS glue, evaluated once per app inside the snapshot creator.
pub(crate) const RUNTIME_JS: &str = concat!(
    include_str!("js/runtime/head.js"),
    include_str!("js/runtime/streams.js"),
    include_str!("js/runtime/builtins.js"),
    include_str!("js/runtime/console.js"),
    include_str!("js/runtime/timers.js"),
    include_str!("js/runtime/encoding.js"),
    include_str!("js/runtime/events.js"),
    include_str!("js/runtime/base64.js"),
    include_str!("js/runtime/clone.js"),
    include_str!("js/runtime/globals.js"),
    include_str!("js/runtime/crypto.js"),
    include_str!("js/runtime/url.js"),
    include_str!("js/runtime/headers.js"),
    include_str!("js/runtime/forms.js"),
    include_str!("js/runtime/body.js"),
    include_str!("js/runtime/fetch.js"),
    include_str!("js/runtime/node.js"),
    include_str!("js/runtime/wasm.js"),
    include_str!("js/runtime/language.js"),
    include_str!("js/runtime/dispatch.js"),
);

/// The runtime JS as a V8 string resource outside the heap: V8 reads the source where the binary
/// holds it, and a snapshot refers to it (it is among the [`external_references`]) instead of
/// carrying a copy, so neither the app snapshots nor the isolates hold the 110 KB source. The
/// sources must be ASCII (checked as this compiles): escape anything else (`\u2026`).
pub(crate) static RUNTIME_SOURCE: v8::OneByteConst =
    v8::String::create_external_onebyte_const(RUNTIME_JS.as_bytes());

/// Runtime JS compiled into a context only when the context first needs it (`lazyScript` op):
/// the Node layer's tiers and the rarely used Web globals. With context reset every request
/// deserialises its whole context, so code an app does not use must not be in it. Static string
/// resources like [`RUNTIME_SOURCE`]: compiling one copies nothing into the heap.
static LAZY_SCRIPTS: [(&str, v8::OneByteConst); 8] = [
    lazy_script("inspect", include_str!("js/node/inspect.js")),
    lazy_script("buffer", include_str!("js/node/buffer.js")),
    lazy_script("rest", include_str!("js/node/rest.js")),
    lazy_script("extras", include_str!("js/extras.js")),
    lazy_script("guards", include_str!("js/guards.js")),
    lazy_script("subtle", include_str!("js/subtle.js")),
    lazy_script("cache", include_str!("js/cache.js")),
    lazy_script("websocket", include_str!("js/websocket.js")),
];

const fn lazy_script(name: &'static str, code: &'static str) -> (&'static str, v8::OneByteConst) {
    (
        name,
        v8::String::create_external_onebyte_const(code.as_bytes()),
    )
}

/// The static string resources, as external references: a snapshot names them by their place
/// in the list.
fn source_references() -> impl Iterator<Item = v8::ExternalReference> {
    std::iter::once(&RUNTIME_SOURCE)
        .chain(LAZY_SCRIPTS.iter().map(|(_, code)| code))
        .map(|source| v8::ExternalReference {
            pointer: source as *const v8::OneByteConst as *mut std::ffi::c_void,
        })
}

macro_rules! ops {
    ($($name:literal => $func:ident),* $(,)?) => {
        /// Every native callback and static source reachable from a snapshot, in a fixed
        /// order: the ops, the accessor of the lazy globals, the runtime's sources.
        pub(crate) fn external_references() -> Vec<v8::ExternalReference> {
            let mut references = vec![$(v8::ExternalReference { function: v8::MapFnTo::map_fn_to($func) }),*];
            references.extend(lazy_global_references());
            references.extend(source_references());
            references
        }

        /// Builds the ops object handed to the runtime bootstrap. It goes into every context:
        /// its functions cannot construct, so none carries a prototype object (15 KB a context).
        pub(crate) fn ops_object<'s>(scope: &mut v8::HandleScope<'s>) -> v8::Local<'s, v8::Object> {
            let ops = v8::Object::new(scope);
            $(
                let template = v8::FunctionTemplate::builder($func)
                    .constructor_behavior(v8::ConstructorBehavior::Throw)
                    .build(scope);
                let function = template.get_function(scope).expect("op function instantiates");
                let key = v8::String::new(scope, $name).expect("op name fits in a V8 string");
                ops.set(scope, key.into(), function.into());
            )*
            ops
        }
    };
}

ops! {
    "log" => op_log,
    "timerStart" => op_timer_start,
    "timerCancel" => op_timer_cancel,
    "timersEnded" => op_timers_ended,
    "respond" => op_respond,
    "respondStream" => op_respond_stream,
    "streamChunk" => op_stream_chunk,
    "streamEnd" => op_stream_end,
    "fail" => op_fail,
    "done" => op_done,
    "encodeUtf8" => op_encode_utf8,
    "decodeUtf8" => op_decode_utf8,
    "urlParse" => op_url_parse,
    "urlSet" => op_url_set,
    "memoryLimit" => op_memory_limit,
    "currentRequest" => op_current_request,
    "wasmMemories" => op_wasm_memories,
    "wasmCap" => op_wasm_cap,
    "randomBytes" => op_random_bytes,
    "digest" => op_digest,
    "hmac" => op_hmac,
    "now" => op_now,
    "fetchStart" => op_fetch_start,
    "crypto" => op_crypto,
    "lazyScript" => op_lazy_script,
    "lazyGlobal" => op_lazy_global,
    "asyncContext" => op_async_context,
    "setAsyncContext" => op_set_async_context,
    "encodingName" => op_encoding_name,
    "codecOpen" => op_codec_open,
    "textDecode" => op_text_decode,
    "compressPush" => op_compress_push,
    "compressFinish" => op_compress_finish,
    "codecClose" => op_codec_close,
    "urlPatternParse" => op_url_pattern_parse,
    "urlPatternInput" => op_url_pattern_input,
    "cachePut" => op_cache_put,
    "cacheMatch" => op_cache_match,
    "cacheDelete" => op_cache_delete,
    "wsAccept" => op_ws_accept,
    "wsSend" => op_ws_send,
    "wsClose" => op_ws_close,
    "wsConnect" => op_ws_connect,
}

/// `encodingName(label)`: the WHATWG name of a TextDecoder label, or undefined.
fn op_encoding_name(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let label = string_arg(scope, &args, 0);
    if let Some(name) = codec::encoding_name(&label)
        && let Some(name) = v8::String::new(scope, &name)
    {
        rv.set(name.into());
    }
}

/// `codecOpen(kind, name, flag, flag)`: a streaming text decoder (`"text"`, encoding name,
/// fatal, ignoreBOM), a compression stream (`"compress"`/`"decompress"`, format) or a digest
/// stream (`"digest"`, MD5 or SHA-1/256/384/512). Answers the codec's number.
fn op_codec_open(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let kind = string_arg(scope, &args, 0);
    let name = string_arg(scope, &args, 1);
    let codec = match kind.as_str() {
        "text" => {
            let fatal = args.get(2).boolean_value(scope);
            let ignore_bom = args.get(3).boolean_value(scope);
            codec::text_decoder(&name, fatal, ignore_bom)
        }
        "digest" => codec::digest(&name),
        _ => codec::compression(&name, kind == "decompress"),
    };
    let Some(codec) = codec else {
        return throw_type_error(
            scope,
            &format!("unsupported format {name:?} (gzip, deflate and deflate-raw are supported)"),
        );
    };
    let state = host::state(scope);
    let opened = {
        let mut state = state.borrow_mut();
        let owner = state.owner();
        state.codecs.open(owner, codec)
    };
    match opened {
        Ok(id) => rv.set_uint32(id),
        Err(err) => throw_type_error(scope, &err.to_string()),
    }
}

/// `textDecode(id, bytes, last)`: the text of `bytes`; `last` ends the decoder.
fn op_text_decode(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = args.get(0).uint32_value(scope).unwrap_or(0);
    let bytes = bytes_of(args.get(1)).unwrap_or_default();
    let last = args.get(2).boolean_value(scope);
    let decoded = host::state(scope)
        .borrow_mut()
        .codecs
        .call(id, last, |codec| codec.decode(&bytes, last));
    match decoded {
        Ok(text) => match v8::String::new(scope, &text) {
            Some(text) => rv.set(text.into()),
            None => throw_type_error(
                scope,
                "TextDecoder.decode: the text is too long for a string",
            ),
        },
        Err(err) => throw_type_error(scope, &format!("TextDecoder.decode: {err}")),
    }
}

/// `compressPush(id, bytes)`: what the compressor or decompressor makes of `bytes`.
fn op_compress_push(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = args.get(0).uint32_value(scope).unwrap_or(0);
    let bytes = bytes_of(args.get(1)).unwrap_or_default();
    let pushed = host::state(scope)
        .borrow_mut()
        .codecs
        .call(id, false, |codec| codec.push(&bytes));
    match pushed {
        Ok(out) => rv.set(uint8_array(scope, out).into()),
        Err(err) => throw_type_error(scope, &err.to_string()),
    }
}

/// `compressFinish(id)`: the stream's last bytes; the codec ends.
fn op_compress_finish(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = args.get(0).uint32_value(scope).unwrap_or(0);
    let state = host::state(scope);
    let codec = state.borrow_mut().codecs.close(id);
    let finished = codec
        .ok_or(codec::CodecError::Closed)
        .and_then(codec::Codec::finish);
    match finished {
        Ok(out) => rv.set(uint8_array(scope, out).into()),
        Err(err) => throw_type_error(scope, &err.to_string()),
    }
}

/// `codecClose(id)`: a cancelled stream or a dropped decoder.
fn op_codec_close(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let id = args.get(0).uint32_value(scope).unwrap_or(0);
    let state = host::state(scope);
    state.borrow_mut().codecs.close(id);
}

/// The origin of a script or module named `name` (the runtime's, a lazy script's, an app's).
pub(crate) fn script_origin<'s>(
    scope: &mut v8::HandleScope<'s>,
    name: v8::Local<'s, v8::Value>,
    is_module: bool,
) -> v8::ScriptOrigin<'s> {
    v8::ScriptOrigin::new(
        scope, name, 0, 0, false, 0, None, false, false, is_module, None,
    )
}

/// `lazyScript(name)`: compiles and runs one of the [`LAZY_SCRIPTS`] in the current context;
/// answers the function that builds what it holds.
fn op_lazy_script(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let name = string_arg(scope, &args, 0);
    let Some((_, code)) = LAZY_SCRIPTS.iter().find(|(script, _)| *script == name) else {
        return throw_type_error(scope, &format!("no runtime script named {name:?}"));
    };
    // Compiling and running fail only if the request's JS is being terminated (a limit hit
    // meanwhile): the termination then propagates by itself.
    let Some(source) = v8::String::new_from_onebyte_const(scope, code) else {
        return;
    };
    let resource = v8::String::new(scope, &format!("nano:{name}.js")).expect("short string");
    let origin = script_origin(scope, resource.into(), false);
    if let Some(script) = v8::Script::compile(scope, source, Some(&origin))
        && let Some(built) = script.run(scope)
    {
        rv.set(built);
    }
}

/// The private key under which a context's global holds the runtime's internals (what its
/// bootstrap returned: dispatch, the lazy globals' builder...).
pub(crate) fn internals_key<'s>(scope: &mut v8::HandleScope<'s>) -> v8::Local<'s, v8::Private> {
    let name = v8::String::new(scope, "nano.internals").expect("short string");
    v8::Private::for_api(scope, Some(name))
}

/// The runtime's internals of the current context (none before its bootstrap has run).
pub(crate) fn internals<'s>(scope: &mut v8::HandleScope<'s>) -> Option<v8::Local<'s, v8::Object>> {
    let global = scope.get_current_context().global(scope);
    let key = internals_key(scope);
    global
        .get_private(scope, key)
        .and_then(|v| v.to_object(scope))
}

/// `lazyGlobal(holder, name, data)`: makes `name` a native data property of `holder` (the global
/// or the prototype of it where the Web APIs are) whose first read builds its value (the
/// runtime's `makeLazyGlobal(data, name)`, which then makes it a plain value) and whose
/// assignment sets it. `data` is laid out by the runtime's `lazyGlobal` (head.js); its two lowest
/// bits are the property's attributes (`lazy_global_attributes`). The accessor (an `AccessorInfo`
/// holding the name and the data, no context object) is kept with the isolate's part of a
/// snapshot, so an unread lazy global costs each context one descriptor or property cell where a
/// JS getter and setter cost two closures and their pair.
fn op_lazy_global(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let (Ok(holder), Ok(name), Ok(data)) = (
        v8::Local::<v8::Object>::try_from(args.get(0)),
        v8::Local::<v8::String>::try_from(args.get(1)),
        v8::Local::<v8::Integer>::try_from(args.get(2)),
    ) else {
        return throw_type_error(
            scope,
            "lazyGlobal(holder, name, data): an object, a string and a number",
        );
    };
    let accessor = v8::AccessorConfiguration::new(lazy_global_get)
        .setter(lazy_global_set)
        .data(data.into())
        .property_attribute(lazy_global_attributes(data.value()));
    holder.set_accessor_with_configuration(scope, name.into(), accessor);
}

/// The attributes of a lazy global: its data's bit 1 is not enumerable, bit 2 read only.
fn lazy_global_attributes(data: i64) -> v8::PropertyAttribute {
    let mut attributes = v8::PropertyAttribute::NONE;
    if data & 1 != 0 {
        attributes = attributes | v8::PropertyAttribute::DONT_ENUM;
    }
    if data & 2 != 0 {
        attributes = attributes | v8::PropertyAttribute::READ_ONLY;
    }
    attributes
}

/// V8's default `--stack-size` on x64 and arm64 (984 KiB): how far below where an isolate is
/// first entered on a thread its JS may take the stack.
const V8_STACK_BYTES: usize = 984 * 1024;

/// The stack a lazy group is made with: a first read with less left is refused at once with the
/// RangeError V8 would throw. Without this, a read at the stack's edge (a recursion that reads
/// one in its `catch`) makes the group again in every frame on the way up until one has the
/// stack for it, each attempt parsing and running part of it: with Sparkplug's small frames,
/// thousands of attempts, over a second of CPU.
const LAZY_GLOBAL_STACK_BYTES: usize = 256 * 1024;

thread_local! {
    /// Roughly where V8's stack limit is on this thread (0: not known, nothing is refused).
    static JS_STACK_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The address of a local of the caller's frame: where the stack is now.
#[inline(never)]
fn stack_position() -> usize {
    let here = 0u8;
    std::hint::black_box(&here) as *const u8 as usize
}

/// Called on a worker's thread just before it makes an isolate: V8 sets the thread's stack
/// limit `--stack-size` below where the isolate is entered (a few frames deeper than this, so
/// the limit noted is slightly above V8's: reads are refused slightly early, never late).
pub fn note_js_stack_limit() {
    JS_STACK_LIMIT.set(stack_position().saturating_sub(V8_STACK_BYTES));
}

/// The accessor of a lazy global, read: builds the value (the runtime defines it as a plain
/// global in its place). If building throws (or the request's JS is being terminated), the
/// exception propagates to the reader.
fn lazy_global_get(
    scope: &mut v8::HandleScope,
    name: v8::Local<v8::Name>,
    args: v8::PropertyCallbackArguments,
    mut rv: v8::ReturnValue<v8::Value>,
) {
    let limit = JS_STACK_LIMIT.get();
    if limit != 0 && stack_position() < limit + LAZY_GLOBAL_STACK_BYTES {
        let message = message_string(scope, "Maximum call stack size exceeded");
        let error = v8::Exception::range_error(scope, message);
        scope.throw_exception(error);
        return;
    }
    let Some(internals) = internals(scope) else {
        return;
    };
    let Some(make) = v8::String::new(scope, "makeLazyGlobal")
        .and_then(|key| internals.get(scope, key.into()))
        .and_then(|make| v8::Local::<v8::Function>::try_from(make).ok())
    else {
        return;
    };
    let undefined = v8::undefined(scope).into();
    if let Some(value) = make.call(scope, undefined, &[args.data(), name.into()]) {
        rv.set(value);
    }
}

/// The accessor of a lazy global, assigned before any read: the property becomes the value. (V8
/// calls it only when the object assigned to is the accessor's holder; assigned through a
/// prototype, the object gets its own property, as for any data property.)
fn lazy_global_set(
    scope: &mut v8::HandleScope,
    name: v8::Local<v8::Name>,
    value: v8::Local<v8::Value>,
    args: v8::PropertyCallbackArguments,
    _rv: v8::ReturnValue<()>,
) {
    let data = args.data().integer_value(scope).unwrap_or(0);
    let holder = args.this();
    // Deleted first: defining over a native data property would read it (and build it).
    holder.delete(scope, name.into());
    holder.define_own_property(scope, name, value, lazy_global_attributes(data));
}

fn lazy_global_references() -> [v8::ExternalReference; 2] {
    let get: v8::AccessorNameGetterCallback = v8::MapFnTo::map_fn_to(lazy_global_get);
    let set: v8::AccessorNameSetterCallback = v8::MapFnTo::map_fn_to(lazy_global_set);
    [
        v8::ExternalReference {
            pointer: get as *mut std::ffi::c_void,
        },
        v8::ExternalReference {
            pointer: set as *mut std::ffi::c_void,
        },
    ]
}

/// The current async context frame (AsyncLocalStorage's stores): V8 keeps it with every promise
/// reaction it queues and restores it when the reaction runs.
fn op_async_context(
    scope: &mut v8::HandleScope,
    _args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let frame = scope.get_continuation_preserved_embedder_data();
    rv.set(frame);
}

fn op_set_async_context(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    scope.set_continuation_preserved_embedder_data(args.get(0));
}

/// `crypto.subtle`'s public-key and AEAD work: `op(kind, ...args)` answers `[true, value]` or
/// `[false, errorName, message]` (the JS side throws the DOMException).
fn op_crypto(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let kind = string_arg(scope, &args, 0);
    if kind.ends_with("-generate") && refuse_outside_a_request(scope, "generating a key") {
        return;
    }
    let bytes = |i: i32| bytes_of(args.get(i)).unwrap_or_default();
    enum Out {
        Bytes(Vec<u8>),
        Bool(bool),
        /// A key read from a SubjectPublicKeyInfo: its kind, then its parts.
        Key(&'static str, Vec<Vec<u8>>),
        /// Several byte strings: a generated key pair, an RSA key's (n, e), a private JWK's members.
        Parts(Vec<Vec<u8>>),
    }
    let string = |scope: &mut v8::HandleScope, i: i32| string_arg(scope, &args, i);
    let result: Result<Out, crypto::CryptoError> = match kind.as_str() {
        "aes-encrypt" | "aes-decrypt" => crypto::aes_gcm(
            kind == "aes-encrypt",
            &bytes(1),
            &bytes(2),
            &bytes(3),
            &bytes(4),
        )
        .map(Out::Bytes),
        "aes-cbc-encrypt" | "aes-cbc-decrypt" => {
            crypto::aes_cbc(kind == "aes-cbc-encrypt", &bytes(1), &bytes(2), &bytes(3))
                .map(Out::Bytes)
        }
        "aes-ctr" => crypto::aes_ctr(
            &bytes(1),
            &bytes(2),
            args.get(3).uint32_value(scope).unwrap_or(0),
            &bytes(4),
        )
        .map(Out::Bytes),
        "aes-kw-wrap" | "aes-kw-unwrap" => {
            crypto::aes_kw(kind == "aes-kw-wrap", &bytes(1), &bytes(2)).map(Out::Bytes)
        }
        "ecdh-p256" => crypto::ecdh_p256(&bytes(1), &bytes(2)).map(Out::Bytes),
        "x25519-generate" => crypto::x25519_generate().map(|(a, b)| Out::Parts(vec![a, b])),
        "x25519" => crypto::x25519_derive(&bytes(1), &bytes(2)).map(Out::Bytes),
        "ed25519-generate" => crypto::ed25519_generate().map(|(a, b)| Out::Parts(vec![a, b])),
        "ed25519-sign" => crypto::ed25519_sign(&bytes(1), &bytes(2)).map(Out::Bytes),
        "p256-generate" => crypto::p256_generate().map(|(a, b)| Out::Parts(vec![a, b])),
        "p256-sign" => crypto::p256_sign(&bytes(1), &bytes(2)).map(Out::Bytes),
        "rsa-verify" => {
            let (scheme, hash) = (string(scope, 1), string(scope, 2));
            crypto::rsa_verify(&scheme, &hash, &bytes(3), &bytes(4), &bytes(5), &bytes(6))
                .map(Out::Bool)
        }
        "rsa-sign" => {
            let (scheme, hash) = (string(scope, 1), string(scope, 2));
            crypto::rsa_sign(&scheme, &hash, &bytes(4), &bytes(3)).map(Out::Bytes)
        }
        "rsa-private-public" => {
            crypto::rsa_private_public(&bytes(1)).map(|(n, e)| Out::Parts(vec![n, e]))
        }
        "private-check" => {
            crypto::private_key_check(&string(scope, 1), &bytes(2)).map(|()| Out::Bool(true))
        }
        // Private keys live as PKCS#8; JWKs are converted on the way in and out.
        "pkcs8-from-jwk" => {
            let kind = string(scope, 1);
            let count = if kind == "RSA" { 8 } else { 2 };
            let parts: Vec<Vec<u8>> = (2..2 + count).map(bytes).collect();
            crypto::pkcs8_from_jwk(&kind, &parts).map(Out::Bytes)
        }
        "jwk-from-pkcs8" => crypto::jwk_from_pkcs8(&string(scope, 1), &bytes(2)).map(Out::Parts),
        "pbkdf2" => crypto::pbkdf2(
            &string(scope, 1),
            &bytes(2),
            &bytes(3),
            args.get(4).uint32_value(scope).unwrap_or(0),
            args.get(5).uint32_value(scope).unwrap_or(0) as usize,
        )
        .map(Out::Bytes),
        "hkdf" => crypto::hkdf(
            &string(scope, 1),
            &bytes(2),
            &bytes(3),
            &bytes(4),
            args.get(5).uint32_value(scope).unwrap_or(0) as usize,
        )
        .map(Out::Bytes),
        "rsa-public-check" => {
            crypto::rsa_public_check(&bytes(1), &bytes(2)).map(|()| Out::Bool(true))
        }
        "spki-decode" => crypto::spki_decode(&bytes(1)).map(|key| match key {
            crypto::SpkiKey::Rsa { n, e } => Out::Key("RSA", vec![n, e]),
            crypto::SpkiKey::P256(point) => Out::Key("P-256", vec![point]),
            crypto::SpkiKey::Ed25519(raw) => Out::Key("Ed25519", vec![raw]),
            crypto::SpkiKey::X25519(raw) => Out::Key("X25519", vec![raw]),
        }),
        "spki-encode" => {
            let key = match string(scope, 1).as_str() {
                "RSA" => crypto::SpkiKey::Rsa {
                    n: bytes(2),
                    e: bytes(3),
                },
                "P-256" => crypto::SpkiKey::P256(bytes(2)),
                "X25519" => crypto::SpkiKey::X25519(bytes(2)),
                _ => crypto::SpkiKey::Ed25519(bytes(2)),
            };
            crypto::spki_encode(&key).map(Out::Bytes)
        }
        "verify" => {
            let algorithm = string_arg(scope, &args, 1);
            Ok(Out::Bool(crypto::verify(
                &algorithm,
                &bytes(2),
                &bytes(3),
                &bytes(4),
            )))
        }
        other => Err(crypto::CryptoError::NotSupported(format!(
            "unknown crypto operation {other:?}"
        ))),
    };
    let items: Vec<v8::Local<v8::Value>> = match result {
        Ok(out) => {
            let value: v8::Local<v8::Value> = match out {
                Out::Bytes(b) => uint8_array(scope, b).into(),
                Out::Bool(b) => v8::Boolean::new(scope, b).into(),
                Out::Key(kind, parts) => {
                    let kind = v8::String::new(scope, kind).expect("short").into();
                    bytes_array(scope, Some(kind), parts)
                }
                Out::Parts(parts) => bytes_array(scope, None, parts),
            };
            vec![v8::Boolean::new(scope, true).into(), value]
        }
        Err(err) => vec![
            v8::Boolean::new(scope, false).into(),
            v8::String::new(scope, err.name()).expect("short").into(),
            message_string(scope, &err.to_string()).into(),
        ],
    };
    let array = v8::Array::new_with_elements(scope, &items);
    rv.set(array.into());
}

/// A JS array of Uint8Arrays, after `head` when given.
fn bytes_array<'s>(
    scope: &mut v8::HandleScope<'s>,
    head: Option<v8::Local<'s, v8::Value>>,
    parts: Vec<Vec<u8>>,
) -> v8::Local<'s, v8::Value> {
    let mut items: Vec<v8::Local<v8::Value>> = head.into_iter().collect();
    for part in parts {
        items.push(uint8_array(scope, part).into());
    }
    v8::Array::new_with_elements(scope, &items).into()
}

/// Starts a subrequest for the request whose JS runs now; returns its id. Refuses (TypeError)
/// past `apps[].fetch.max_subrequests` and outside a request.
fn op_fetch_start(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let method = string_arg(scope, &args, 0);
    let url = string_arg(scope, &args, 1);
    let headers = headers_arg(scope, args.get(2));
    let body = bytes_of(args.get(3));
    let redirect = string_arg(scope, &args, 4);
    let state = host::state(scope);
    let mut state = state.borrow_mut();
    let Some(request) = state.current_request.filter(|r| *r != 0) else {
        drop(state);
        return throw_type_error(scope, "fetch() can only be called while handling a request");
    };
    let Some(fetch) = state.fetch.as_mut() else {
        drop(state);
        return throw_type_error(scope, "fetch() is not available during start-up");
    };
    let (limit, policy, done) = (
        fetch.max_subrequests,
        fetch.policy.clone(),
        fetch.done.clone(),
    );
    fetch.next_id += 1;
    let id = fetch.next_id;
    let Some(inflight) = state.requests.get_mut(&request) else {
        drop(state);
        return throw_type_error(scope, "fetch(): the request has already finished");
    };
    if inflight.subrequests >= limit {
        drop(state);
        return throw_type_error(
            scope,
            &format!(
                "fetch(): this request already made {limit} subrequests, the limit (apps[].fetch.max_subrequests)"
            ),
        );
    }
    inflight.subrequests += 1;
    let cancel = inflight.cancel.clone();
    drop(state);
    let request_spec = fetch::FetchRequest {
        method,
        url,
        headers,
        body,
        redirect,
    };
    tokio::task::spawn_local(async move {
        let result = tokio::select! {
            result = fetch::perform(request_spec, &policy) => result,
            _ = cancel.cancelled() => return,
        };
        let _ = done.send(host::FetchDone {
            request,
            fetch: id,
            result,
        });
    });
    rv.set_double(id as f64);
}

fn op_random_bytes(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    if refuse_outside_a_request(scope, "generating random values (crypto)") {
        return;
    }
    let len = args.get(0).uint32_value(scope).unwrap_or(0) as usize;
    let mut bytes = vec![0u8; len];
    if let Err(err) = getrandom::fill(&mut bytes) {
        return throw_type_error(
            scope,
            &format!("crypto: the system's random source failed: {err}"),
        );
    }
    let array = uint8_array(scope, bytes);
    rv.set(array.into());
}

/// The digest of `data` with a Web Crypto hash name, or `None` for an unknown name.
fn digest_of(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut hash = codec::hasher(&algorithm.to_ascii_uppercase())?;
    hash.update(data);
    Some(hash.finalize().into_vec())
}

fn hmac_of(algorithm: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use hmac::{KeyInit, Mac};
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    Some(match algorithm.to_ascii_uppercase().as_str() {
        "SHA-1" => run::<hmac::Hmac<sha1::Sha1>>(key, data),
        "SHA-256" => run::<hmac::Hmac<sha2::Sha256>>(key, data),
        "SHA-384" => run::<hmac::Hmac<sha2::Sha384>>(key, data),
        "SHA-512" => run::<hmac::Hmac<sha2::Sha512>>(key, data),
        _ => return None,
    })
}

fn op_digest(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let algorithm = string_arg(scope, &args, 0);
    let data = bytes_of(args.get(1)).unwrap_or_default();
    match digest_of(&algorithm, &data) {
        Some(digest) => {
            let array = uint8_array(scope, digest);
            rv.set(array.into());
        }
        None => throw_type_error(
            scope,
            &format!(
                "crypto.subtle.digest: unsupported algorithm {algorithm:?} (SHA-1, SHA-256, SHA-384, SHA-512)"
            ),
        ),
    }
}

fn op_hmac(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let algorithm = string_arg(scope, &args, 0);
    let key = bytes_of(args.get(1)).unwrap_or_default();
    let data = bytes_of(args.get(2)).unwrap_or_default();
    match hmac_of(&algorithm, &key, &data) {
        Some(mac) => {
            let array = uint8_array(scope, mac);
            rv.set(array.into());
        }
        None => throw_type_error(scope, &format!("HMAC: unsupported hash {algorithm:?}")),
    }
}

/// `now()`: monotonic milliseconds since the node's first reading; `now(true)`: the same clock
/// as milliseconds since the epoch (performance.now() on workerd).
fn op_now(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    static ORIGIN: std::sync::LazyLock<(std::time::Instant, f64)> =
        std::sync::LazyLock::new(|| {
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64() * 1000.0);
            (std::time::Instant::now(), epoch)
        });
    let (origin, epoch) = *ORIGIN;
    let elapsed = origin.elapsed().as_secs_f64() * 1000.0;
    rv.set_double(if args.get(0).boolean_value(scope) {
        epoch + elapsed
    } else {
        elapsed
    });
}

fn op_memory_limit(
    scope: &mut v8::HandleScope,
    _args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let limit = host::state(scope).borrow().memory_limit;
    rv.set_double(limit as f64);
}

/// `currentRequest()`: the id of the request whose JS is running (as `dispatch` got it), or
/// undefined outside one.
fn op_current_request(
    scope: &mut v8::HandleScope,
    _args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    if let Some(id) = host::state(scope)
        .borrow()
        .current_request
        .filter(|r| *r != 0)
    {
        rv.set_double(id as f64);
    }
}

/// `wasmMemories(delta)`: +1 asks to open a WebAssembly memory (false past the bounds: see
/// `host::WasmMemories`), -1 reports one collected.
fn op_wasm_memories(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let delta = args.get(0).int32_value(scope).unwrap_or(0);
    let state = host::state(scope);
    let mut state = state.borrow_mut();
    rv.set_bool(if delta > 0 {
        state.open_wasm_memory()
    } else {
        state.close_wasm_memory();
        true
    });
}

/// `wasmCap(bytes)`: `[bytes, memories]`, the module's bytes with the memories it defines capped
/// at the isolate's memory limit (see `wasm_limits`; the same bytes when it defines none) and how
/// many it defines; a RangeError when a memory starts over the limit.
fn op_wasm_cap(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let Some(bytes) = bytes_of(args.get(0)) else {
        rv.set(args.get(0));
        return;
    };
    let limit = host::state(scope).borrow().memory_limit as u64;
    let (module, defined): (v8::Local<v8::Value>, u32) =
        match wasm_limits::cap_memories(&bytes, limit) {
            Ok(wasm_limits::Capped::Unchanged) => (args.get(0), 0),
            Ok(wasm_limits::Capped::Rewritten(capped, defined)) => {
                (uint8_array(scope, capped).into(), defined)
            }
            Err(message) => {
                let message = message_string(scope, &format!("WebAssembly: {message}"));
                let exception = v8::Exception::range_error(scope, message);
                scope.throw_exception(exception);
                return;
            }
        };
    let defined = v8::Integer::new_from_unsigned(scope, defined).into();
    rv.set(v8::Array::new_with_elements(scope, &[module, defined]).into());
}

/// Random values made at module top level would be frozen into the app's snapshot: the same in
/// every isolate and after every restart (a "secret" made there is a constant of the deployment).
/// As on Workers, they are refused outside a handler. Returns true (with the error thrown) then.
fn refuse_outside_a_request(scope: &mut v8::HandleScope, what: &str) -> bool {
    if host::state(scope).borrow().current_request.is_some() {
        return false;
    }
    let message = message_string(
        scope,
        &format!(
            "Disallowed operation called within global scope: {what}. Generating random values \
             (and setting timers, fetch()) is not allowed at the top level of a module, whose \
             result is shared by every isolate of the app; do it inside the fetch handler"
        ),
    );
    let exception = v8::Exception::error(scope, message);
    scope.throw_exception(exception);
    true
}

fn throw_type_error(scope: &mut v8::HandleScope, message: &str) {
    let message = message_string(scope, message);
    let exception = v8::Exception::type_error(scope, message);
    scope.throw_exception(exception);
}

/// The start of a tenant's value for quoting in a message (a URL can be 512 MiB long).
fn preview(value: &str) -> std::borrow::Cow<'_, str> {
    truncated(value, 200)
}

/// Messages quote what the tenant passed (a URL, an algorithm name), which can be longer than
/// V8's longest string: cut them to a readable length so making the error can never fail.
fn message_string<'s>(scope: &mut v8::HandleScope<'s>, message: &str) -> v8::Local<'s, v8::String> {
    v8::String::new(scope, &truncated(message, 4096))
        .expect("a message of at most 4 KiB fits in a V8 string")
}

fn string_arg(scope: &mut v8::HandleScope, args: &v8::FunctionCallbackArguments, i: i32) -> String {
    args.get(i).to_rust_string_lossy(scope)
}

fn request_id(scope: &mut v8::HandleScope, args: &v8::FunctionCallbackArguments) -> u64 {
    args.get(0).integer_value(scope).unwrap_or(-1) as u64
}

fn op_log(scope: &mut v8::HandleScope, args: v8::FunctionCallbackArguments, _rv: v8::ReturnValue) {
    let level = args.get(0).int32_value(scope).unwrap_or(1);
    let message = string_arg(scope, &args, 1);
    let state = host::state(scope);
    let mut state = state.borrow_mut();
    // A live tail sees the request's lines (bounded) even past the log's rate limits.
    if let Some(id) = state.current_request
        && let Some(tail) = state.requests.get_mut(&id).and_then(|r| r.tail.as_mut())
    {
        tail.log(level, &message);
    }
    if !state.admit_log(message.len()) {
        return;
    }
    let hostname = &*state.hostname;
    match level {
        0 => tracing::debug!(target: "nano::console", hostname = %hostname, "{message}"),
        1 => tracing::info!(target: "nano::console", hostname = %hostname, "{message}"),
        2 => tracing::warn!(target: "nano::console", hostname = %hostname, "{message}"),
        _ => tracing::error!(target: "nano::console", hostname = %hostname, "{message}"),
    }
}

fn op_timer_start(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let ms = args.get(0).number_value(scope).unwrap_or(0.0);
    let ms = if ms.is_finite() {
        ms.clamp(0.0, 2_147_483_647.0)
    } else {
        0.0
    };
    let repeat = args.get(1).boolean_value(scope);
    let id = host::start_timer(scope, Duration::from_micros((ms * 1000.0) as u64), repeat);
    rv.set_double(id as f64);
}

fn op_timer_cancel(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let id = args.get(0).integer_value(scope).unwrap_or(0) as u64;
    host::state(scope).borrow_mut().cancel_timer(id);
}

/// `timersEnded()`: the ids of timers cancelled natively because their request ended, since
/// the last call (so the shared context of a reset-off app can forget their callbacks), or
/// `undefined` when there are none.
fn op_timers_ended(
    scope: &mut v8::HandleScope,
    _args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let ended = std::mem::take(&mut host::state(scope).borrow_mut().ended_timers);
    if ended.is_empty() {
        return; // undefined: nothing to forget (always so with context reset)
    }
    let ids: Vec<v8::Local<v8::Value>> = ended
        .into_iter()
        .map(|id| v8::Number::new(scope, id as f64).into())
        .collect();
    rv.set(v8::Array::new_with_elements(scope, &ids).into());
}

fn op_respond(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let (id, status, headers) = response_head(scope, &args);
    let body = bytes_of(args.get(3)).unwrap_or_default();
    host::state(scope).borrow_mut().reply(
        id,
        Reply::Response {
            status,
            headers,
            body,
        },
    );
}

/// `(request id, status, headers)`: the first three arguments of `respond`/`respondStream`.
fn response_head(
    scope: &mut v8::HandleScope,
    args: &v8::FunctionCallbackArguments,
) -> (u64, u16, Vec<(String, String)>) {
    let id = request_id(scope, args);
    let status = args.get(1).uint32_value(scope).unwrap_or(500) as u16;
    (id, status, headers_arg(scope, args.get(2)))
}

/// Flattened `[name, value, ...]` headers from a JS array.
fn headers_arg(scope: &mut v8::HandleScope, value: v8::Local<v8::Value>) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Ok(flat) = v8::Local::<v8::Array>::try_from(value) {
        let mut i = 0;
        while i + 1 < flat.length() {
            let name = flat
                .get_index(scope, i)
                .map(|v| v.to_rust_string_lossy(scope));
            let value = flat
                .get_index(scope, i + 1)
                .map(|v| v.to_rust_string_lossy(scope));
            if let (Some(name), Some(value)) = (name, value) {
                headers.push((name, value));
            }
            i += 2;
        }
    }
    headers
}

fn op_respond_stream(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let (id, status, headers) = response_head(scope, &args);
    // The body's length when the app's stream promised one (a FixedLengthStream's readable):
    // sent as the response's Content-Length.
    let length = args.get(3);
    let length = length
        .is_number()
        .then(|| length.integer_value(scope))
        .flatten()
        .and_then(|length| u64::try_from(length).ok());
    host::state(scope).borrow_mut().reply(
        id,
        Reply::StreamStart {
            status,
            headers,
            length,
        },
    );
}

fn op_stream_chunk(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = request_id(scope, &args);
    let chunk = bytes_of(args.get(1)).unwrap_or_default();
    let sent = host::state(scope).borrow_mut().stream_chunk(id, chunk);
    rv.set_double(match sent {
        host::StreamSend::Sent => 0.0,
        host::StreamSend::Wait(ticket) => ticket as f64,
        host::StreamSend::Gone => -1.0,
    });
}

fn op_stream_end(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let id = request_id(scope, &args);
    let error = args.get(1);
    let error = (!error.is_null_or_undefined()).then(|| error.to_rust_string_lossy(scope));
    host::state(scope).borrow_mut().stream_end(id, error);
}

fn op_fail(scope: &mut v8::HandleScope, args: v8::FunctionCallbackArguments, _rv: v8::ReturnValue) {
    let id = request_id(scope, &args);
    let kind = string_arg(scope, &args, 1);
    let message = string_arg(scope, &args, 2);
    let stack = string_arg(scope, &args, 3);
    let state = host::state(scope);
    let mut state = state.borrow_mut();
    let reply = match kind.as_str() {
        "bad-response" => Reply::BadResponse { message },
        _ => Reply::Exception { message, stack },
    };
    state.reply(id, reply);
}

fn op_done(scope: &mut v8::HandleScope, args: v8::FunctionCallbackArguments, _rv: v8::ReturnValue) {
    let id = request_id(scope, &args);
    host::state(scope).borrow_mut().finish(id);
}

/// Copies the bytes of an ArrayBufferView (or ArrayBuffer) argument.
fn bytes_of(value: v8::Local<v8::Value>) -> Option<Vec<u8>> {
    if let Ok(view) = v8::Local::<v8::ArrayBufferView>::try_from(value) {
        let mut out = vec![0; view.byte_length()];
        view.copy_contents(&mut out);
        return Some(out);
    }
    if let Ok(buffer) = v8::Local::<v8::ArrayBuffer>::try_from(value) {
        let len = buffer.byte_length();
        let data = buffer.data()?;
        // SAFETY: `data` points at `len` live bytes owned by the buffer, which the caller's handle
        // scope keeps alive for the duration of this copy.
        let slice = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, len) };
        return Some(slice.to_vec());
    }
    None
}

/// A Uint8Array that owns `bytes` without copying them again, charged to the isolate's memory
/// budget like any ArrayBuffer. Over the budget it is empty, and the memory limit has tripped:
/// the request's JS ends as soon as the op returns.
pub(crate) fn uint8_array<'s>(
    scope: &mut v8::HandleScope<'s>,
    bytes: Vec<u8>,
) -> v8::Local<'s, v8::Uint8Array> {
    let budget = scope
        .get_slot::<host::StateRef>()
        .and_then(|state| state.borrow().budget.clone());
    let store = match budget {
        Some(budget) => memory::charged_backing_store(&budget, bytes)
            .unwrap_or_else(|| v8::ArrayBuffer::new_backing_store_from_vec(Vec::new())),
        None => v8::ArrayBuffer::new_backing_store_from_vec(bytes),
    };
    array_over(scope, store)
}

/// A Uint8Array over `bytes`, not charged to the memory budget: for bytes admitted before any
/// JS runs (a request body, bounded by the front's `max_body_bytes`), where a refusal could not
/// end the request and would hand the app an empty body instead.
pub(crate) fn uncharged_uint8_array<'s>(
    scope: &mut v8::HandleScope<'s>,
    bytes: Vec<u8>,
) -> v8::Local<'s, v8::Uint8Array> {
    array_over(scope, v8::ArrayBuffer::new_backing_store_from_vec(bytes))
}

fn array_over<'s>(
    scope: &mut v8::HandleScope<'s>,
    store: v8::UniqueRef<v8::BackingStore>,
) -> v8::Local<'s, v8::Uint8Array> {
    let len = store.byte_length();
    let store = store.make_shared();
    let buffer = v8::ArrayBuffer::with_backing_store(scope, &store);
    v8::Uint8Array::new(scope, buffer, 0, len).expect("a Uint8Array over a fresh buffer")
}

fn op_encode_utf8(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let text = string_arg(scope, &args, 0);
    let array = uint8_array(scope, text.into_bytes());
    rv.set(array.into());
}

fn op_decode_utf8(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let Some(bytes) = bytes_of(args.get(0)) else {
        return throw_type_error(
            scope,
            "TextDecoder.decode: expected an ArrayBuffer or a view",
        );
    };
    let fatal = args.get(1).boolean_value(scope);
    let ignore_bom = args.get(2).boolean_value(scope);
    let bytes = match (ignore_bom, bytes.strip_prefix(b"\xEF\xBB\xBF")) {
        (false, Some(rest)) => rest,
        _ => &bytes[..],
    };
    let text = if fatal {
        match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(err) => {
                return throw_type_error(
                    scope,
                    &format!("TextDecoder.decode: the input is not valid utf-8 ({err})"),
                );
            }
        }
    } else {
        String::from_utf8_lossy(bytes)
    };
    match v8::String::new(scope, &text) {
        Some(s) => rv.set(s.into()),
        None => throw_type_error(
            scope,
            "TextDecoder.decode: the text is too long for a string",
        ),
    }
}

/// The parts of `url` as a JS array, or `None` (with a TypeError thrown) when the serialised
/// URL is longer than a V8 string can be: percent-encoding can make it grow sixfold.
fn url_parts<'s>(
    scope: &mut v8::HandleScope<'s>,
    url: &url::Url,
) -> Option<v8::Local<'s, v8::Value>> {
    let port = url.port().map(|p| p.to_string()).unwrap_or_default();
    let parts = [
        url.as_str(),
        &format!("{}:", url.scheme()),
        url.username(),
        url.password().unwrap_or(""),
        url::quirks::host(url),
        url::quirks::hostname(url),
        &port,
        url::quirks::pathname(url),
        url::quirks::search(url),
        url::quirks::hash(url),
        &url::quirks::origin(url),
    ];
    let mut elements: Vec<v8::Local<v8::Value>> = Vec::with_capacity(parts.len());
    for part in parts {
        let Some(string) = v8::String::new(scope, part) else {
            throw_type_error(
                scope,
                &format!(
                    "Invalid URL: the URL is {} bytes long once encoded, more than a string can hold",
                    url.as_str().len()
                ),
            );
            return None;
        };
        elements.push(string.into());
    }
    Some(v8::Array::new_with_elements(scope, &elements).into())
}

fn op_url_parse(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let input = string_arg(scope, &args, 0);
    let base = if args.get(1).is_undefined() {
        None
    } else {
        Some(string_arg(scope, &args, 1))
    };
    let parsed = match &base {
        None => url::Url::parse(&input),
        Some(base) => match url::Url::parse(base) {
            Ok(base) => base.join(&input),
            Err(err) => {
                return throw_type_error(
                    scope,
                    &format!("Invalid base URL {:?}: {err}", preview(base)),
                );
            }
        },
    };
    match parsed {
        Ok(url) => {
            if let Some(parts) = url_parts(scope, &url) {
                rv.set(parts);
            }
        }
        Err(err) => throw_type_error(scope, &format!("Invalid URL {:?}: {err}", preview(&input))),
    }
}

fn op_url_set(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let href = string_arg(scope, &args, 0);
    let part = string_arg(scope, &args, 1);
    let value = string_arg(scope, &args, 2);
    let Ok(mut url) = url::Url::parse(&href) else {
        return throw_type_error(scope, &format!("Invalid URL {:?}", preview(&href)));
    };
    // Setters that fail leave the URL unchanged, as the URL standard says.
    let result = match part.as_str() {
        "href" => url::quirks::set_href(&mut url, &value).map_err(|e| e.to_string()),
        "protocol" => url::quirks::set_protocol(&mut url, &value).map_err(|_| String::new()),
        "username" => url::quirks::set_username(&mut url, &value).map_err(|_| String::new()),
        "password" => url::quirks::set_password(&mut url, &value).map_err(|_| String::new()),
        "host" => url::quirks::set_host(&mut url, &value).map_err(|_| String::new()),
        "hostname" => url::quirks::set_hostname(&mut url, &value).map_err(|_| String::new()),
        "port" => url::quirks::set_port(&mut url, &value).map_err(|_| String::new()),
        "pathname" => {
            url::quirks::set_pathname(&mut url, &value);
            Ok(())
        }
        "search" => {
            url::quirks::set_search(&mut url, &value);
            Ok(())
        }
        "hash" => {
            url::quirks::set_hash(&mut url, &value);
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(err) = result
        && part == "href"
    {
        return throw_type_error(scope, &format!("Invalid URL {:?}: {err}", preview(&value)));
    }
    if let Some(parts) = url_parts(scope, &url) {
        rv.set(parts);
    }
}
