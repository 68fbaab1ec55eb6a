//! Workers fidelity (issue 11): Intl, Node compatibility and the Workers globals, over HTTP
//! against the real binary. Every expected value is workerd's answer to the same fixture
//! (tests/fixtures/compat, bundled with esbuild, served by npm `workerd` 1.20261117.1 with
//! compatibilityDate "2026-11-01" and compatibilityFlags ["nodejs_compat"], env GREETING = "hi").

use nano_tests::{Nano, block_on};
use serde_json::{Value, json};

fn node() -> Nano {
    Nano::start(json!({ "apps": [{
        "hostname": "compat.example",
        "entrypoint": "compat/app.js",
        // Unoptimised builds format slowly: CPU is not under test here.
        "limits": { "workers": 1, "cpu_ms": 5000 },
        "env": { "GREETING": "hi" }
    }] }))
}

fn probe(nano: &Nano, name: &str) -> Value {
    let reply = block_on(nano.get("compat.example", &format!("/{name}")));
    assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    reply.json()
}

/// Compares the probe's answer with workerd's recorded one (JSON text) member by member, so a
/// failure names the member that differs.
fn assert_matches_workerd(nano: &Nano, name: &str, workerd: &str) {
    let got = probe(nano, name);
    let want: Value = serde_json::from_str(workerd).expect("the recorded workerd answer is JSON");
    match (&got, &want) {
        (Value::Object(got_map), Value::Object(want_map)) => {
            for (key, value) in want_map {
                assert_eq!(
                    got_map.get(key),
                    Some(value),
                    "{name}.{key} differs from workerd"
                );
            }
            assert_eq!(got_map.len(), want_map.len(), "{name}: {got}");
        }
        _ => assert_eq!(got, want, "{name} differs from workerd"),
    }
}

/// Intl: formats, time zones, collation, plural rules, segmentation, supported values and the
/// locale methods of Date, Number, BigInt and String (workerd answers `false` for Asia/Kolkata in
/// supportedValuesOf: ICU's canonical id is Asia/Calcutta).
#[test]
fn intl_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "intl",
        r#"{
            "dtf": "1/15/2024",
            "ny": "Monday, January 15, 2024 at 8:45:30 AM EST",
            "kolkata": "19:15",
            "parts": [
                {
                    "type": "month",
                    "value": "Jan"
                },
                {
                    "type": "literal",
                    "value": " "
                },
                {
                    "type": "day",
                    "value": "15"
                },
                {
                    "type": "literal",
                    "value": ", "
                },
                {
                    "type": "year",
                    "value": "2024"
                }
            ],
            "resolved": {
                "locale": "en-US",
                "calendar": "gregory",
                "numberingSystem": "latn",
                "timeZone": "UTC",
                "year": "numeric",
                "month": "numeric",
                "day": "numeric"
            },
            "resolvedDe": {
                "locale": "de-DE",
                "calendar": "gregory",
                "numberingSystem": "latn",
                "timeZone": "Europe/Berlin",
                "year": "numeric",
                "month": "numeric",
                "day": "numeric"
            },
            "currency": "$1,234,567.89",
            "currencyJa": "￥1,234,568",
            "compact": "1.2M",
            "unit": "50 km/h",
            "de": "1.234.567,891",
            "collator": [
                "a",
                "ä",
                "z",
                "Z"
            ],
            "collatorSv": [
                "a",
                "z",
                "ä"
            ],
            "plural": [
                "other",
                "one",
                "other",
                "other"
            ],
            "ordinal": [
                "one",
                "two",
                "few",
                "other",
                "other",
                "two"
            ],
            "pluralAr": [
                "zero",
                "one",
                "two",
                "few",
                "many",
                "other"
            ],
            "rtf": "yesterday",
            "rtf2": "dentro de 3 horas",
            "list": "a, b, and c",
            "listDe": "a, b oder c",
            "names": "Germany",
            "namesLang": "anglais américain",
            "namesCur": "Euro",
            "seg": [
                "Hello",
                "world"
            ],
            "graphemes": [
                "é",
                "👨\u200d👩\u200d👧"
            ],
            "supportedCurrencies": true,
            "supportedTz": false,
            "supportedCal": true,
            "toLocaleString": "1/15/2024, 1:45:30 PM",
            "toLocaleDateString": "15/01/2024",
            "toLocaleTimeString": "10:45:30 PM",
            "dateString": "Mon Jan 15 2024 13:45:30 GMT+0000 (Coordinated Universal Time)",
            "tzOffset": 0,
            "num": "1,234,567.891",
            "numDe": "1.234.567,891",
            "bigint": "123,456,789,012,345,678,901,234,567,890",
            "bigintHi": "12,34,567",
            "normalize": [
                "Å",
                2,
                "fi",
                3
            ],
            "localeCompare": [
                -1,
                1,
                1,
                0
            ],
            "upper": "İSTANBUL",
            "defaultLocale": "en-US",
            "tz": "UTC"
        }"#,
    );
}

/// Buffer: encodings, shared memory of subarray, numeric accessors, errors with Node's codes.
#[test]
fn buffer_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "buffer",
        r#"{
            "imported": true,
            "isUint8Array": true,
            "isBuffer": [
                true,
                false
            ],
            "length": 13,
            "byteLength": [
                6,
                2,
                2,
                4
            ],
            "hex": "68656c6c6f",
            "base64": "aGVsbG8/Pg==",
            "base64url": "aGVsbG8_Pg",
            "latin1": "68e96c6c6f",
            "ascii": "hi\u0000",
            "binary": "hé",
            "utf16le": "6800e900ac20",
            "ucs2": "hé",
            "fromHex": "Hello",
            "fromBase64": "hello world",
            "fromBase64url": "hi??>>",
            "fromArray": "00ff41",
            "shared": "hA�llo",
            "concat": "abc",
            "compare": [
                -1,
                1,
                true
            ],
            "indexOf": [
                3,
                true,
                3,
                11
            ],
            "ints": [
                "efbeaddefffeff00",
                3735928559,
                -2,
                255,
                61374
            ],
            "double": [
                "400921fb54442d18",
                3.141592653589793
            ],
            "bigint": [
                "9223372036854775813",
                "-9223372036854775803"
            ],
            "json": {
                "type": "Buffer",
                "data": [
                    104,
                    105
                ]
            },
            "fill": "ababa",
            "slice": "def",
            "write": [
                5,
                "0068c3a96c6c"
            ],
            "copy": ".xyz",
            "swap": "02010403",
            "encodings": [
                true,
                true,
                true,
                true,
                true,
                true,
                true,
                true,
                true,
                true,
                false
            ],
            "badEncoding": "TypeError ERR_UNKNOWN_ENCODING",
            "outOfRange": "RangeError ERR_BUFFER_OUT_OF_BOUNDS",
            "inspect": "<Buffer 68 69>",
            "kMaxLength": "number",
            "atob": "hi"
        }"#,
    );
}

/// EventEmitter: order, once, prepend, error without a listener, events.once.
#[test]
fn events_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "events",
        r#"{
            "seen": [
                "first",
                "on:12",
                "once",
                "first",
                "on:34"
            ],
            "emitted": [
                true,
                true,
                false
            ],
            "count": 2,
            "names": [
                "x"
            ],
            "value": 42,
            "error": "Error",
            "removed": 0,
            "maxListeners": 10,
            "isClass": true,
            "named": true
        }"#,
    );
}

/// util: format, inspect, promisify, types.
#[test]
fn util_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "util",
        r#"{
            "format": [
                "Bob is 42.5 years and 42",
                "{\"a\":1} [ 1, [length]: 1 ]",
                "% x extra 3",
                "1.5",
                "1 2 three"
            ],
            "inspect": [
                "{ a: 1, b: 'two', c: [ 1, 2, 3 ], d: { e: { f: [Object] } } }",
                "'str'",
                "[ 1, 'a', null, undefined ]",
                "Map(1) { 'k' => 1 }",
                "Set(1) { 1 }",
                "[Function: named]",
                "123n",
                "Symbol(s)",
                "'bad'"
            ],
            "promisify": "slept 1",
            "types": [
                true,
                true,
                true,
                true,
                true,
                true,
                true,
                true
            ],
            "textCodec": "ok",
            "inherits": true,
            "deepEqual": [
                true,
                false
            ]
        }"#,
    );
}

/// assert: workerd's legacy methods compare strictly too.
#[test]
fn assert_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "assert",
        r#"{
            "ok": null,
            "fails": "AssertionError ERR_ASSERTION",
            "code": [
                true,
                "ERR_ASSERTION",
                1,
                2,
                "strictEqual"
            ],
            "deep": null,
            "deepFails": "AssertionError ERR_ASSERTION",
            "looseDeep": "AssertionError ERR_ASSERTION",
            "strict": "AssertionError ERR_ASSERTION",
            "throws": null,
            "throwsMissing": "AssertionError ERR_ASSERTION",
            "message": "custom message",
            "match": null,
            "notEqual": "AssertionError ERR_ASSERTION"
        }"#,
    );
}

/// path (POSIX).
#[test]
fn path_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "path",
        r#"{
            "join": "/a/c/d.txt",
            "resolve": "/x/z",
            "normalize": "/a/c",
            "dirname": "/a/b",
            "basename": [
                "c.txt",
                "c"
            ],
            "extname": [
                ".gz",
                "",
                "."
            ],
            "relative": "../../d",
            "isAbsolute": [
                true,
                false
            ],
            "parse": {
                "root": "/",
                "dir": "/home/u",
                "base": "file.txt",
                "ext": ".txt",
                "name": "file"
            },
            "format": "/d/n.e",
            "sep": [
                "/",
                ":",
                true
            ]
        }"#,
    );
}

/// string_decoder: a split multi-byte character waits for its rest.
#[test]
fn string_decoder_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "string_decoder",
        r#"{
            "parts": [
                "",
                "€",
                ""
            ],
            "hex": "6869",
            "base64": [
                "",
                "aGk="
            ]
        }"#,
    );
}

/// node:crypto: hashes (md5 included), HMAC, randomBytes, timingSafeEqual, webcrypto.
#[test]
fn crypto_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "crypto",
        r#"{
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha1b64": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=",
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "hmac": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "random": 16,
            "randomIsBuffer": true,
            "uuid": true,
            "safeEqual": [
                true,
                false
            ],
            "safeEqualLength": "TypeError",
            "webcrypto": true,
            "unknownHash": "Error",
            "digestBuffer": true
        }"#,
    );
}

/// AsyncLocalStorage across await, timers, nested runs, queueMicrotask and a fetch() that settles
/// asynchronously.
#[test]
fn async_hooks_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "async_hooks",
        r#"{
            "seen": [
                1,
                1,
                1,
                1,
                2,
                1,
                "micro 1",
                "failed 1",
                null
            ],
            "returned": "store 3",
            "outside": null
        }"#,
    );
}

/// process: env from the app's env, platform, cwd, global.
#[test]
fn process_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "process",
        r#"{
            "same": true,
            "env": "hi",
            "envTypes": "object",
            "platform": "linux",
            "version": true,
            "versionsNode": "string",
            "nextTick": "function",
            "argv": true,
            "cwd": "/bundle",
            "global": true,
            "bufferGlobal": "function",
            "fromEnv": "string"
        }"#,
    );
}

/// process.nextTick runs after already-queued promise reactions, as on workerd.
#[test]
fn next_tick_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "next_tick",
        r#"[
            "sync",
            "promise",
            "tick 1",
            "timeout"
        ]"#,
    );
}

/// node:url file URL helpers.
#[test]
fn url_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "url",
        r#"{
            "toPath": "/tmp/a b.txt",
            "toUrl": "file:///tmp/a%20b.txt",
            "sameUrl": true
        }"#,
    );
}

/// self, global, the Workers classes, Crypto/SubtleCrypto as classes, every console method.
#[test]
fn globals_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "globals",
        r#"{
            "self": true,
            "global": true,
            "types": [
                "CustomEvent:function",
                "MessageChannel:function",
                "MessagePort:function",
                "ByteLengthQueuingStrategy:function",
                "CountQueuingStrategy:function",
                "CompressionStream:function",
                "DecompressionStream:function",
                "URLPattern:function",
                "Crypto:function",
                "SubtleCrypto:function",
                "CryptoKey:function",
                "setImmediate:function",
                "clearImmediate:function",
                "scheduler:object",
                "Buffer:function",
                "process:object",
                "navigator:object"
            ],
            "cryptoClasses": [
                true,
                true,
                "TypeError",
                "TypeError"
            ],
            "console": [],
            "consoleCalls": "no throw"
        }"#,
    );
}

/// CustomEvent (an absent detail is undefined on workerd) and MessageChannel.
#[test]
fn messages_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "messages",
        r#"{
            "detail": {
                "n": 1
            },
            "customIsEvent": true,
            "message": [
                1,
                true,
                2
            ],
            "back": "back",
            "unclonable": "DataCloneError"
        }"#,
    );
}

/// setImmediate/clearImmediate, scheduler.wait and the queuing strategies.
#[test]
fn timers_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "timers",
        r#"{
            "order": [
                "immediate arg",
                "timeout"
            ],
            "waited": "waited",
            "bytes": [
                16,
                5
            ],
            "count": [
                3,
                1
            ],
            "strategyError": "TypeError"
        }"#,
    );
}

/// Uint8Array base64 and hex (V8's --js-base-64).
#[test]
fn base64_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "base64",
        r#"{
            "toBase64": [
                "aGn7/w==",
                "aGn7_w==",
                "aGn7/w"
            ],
            "toHex": "6869fbff",
            "fromBase64": [
                104,
                105,
                251,
                255
            ],
            "fromBase64url": [
                104,
                105,
                251,
                255
            ],
            "fromHex": [
                104,
                105,
                251,
                255
            ],
            "badHex": "SyntaxError",
            "setFromHex": [
                [
                    1,
                    2,
                    0,
                    0
                ],
                4,
                2
            ]
        }"#,
    );
}

/// TextDecoder: every WHATWG label, BOMs, fatal mode and {stream: true}; TextDecoderStream of
/// any encoding, a surrogate pair split across chunks.
#[test]
fn decoders_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "decoders",
        r#"{
            "utf16le": [
                "utf-16le",
                "h€"
            ],
            "utf16be": [
                "utf-16be",
                "h€"
            ],
            "utf16bom": [
                "utf-16le",
                "h"
            ],
            "windows1252": [
                "windows-1252",
                "€éŸ"
            ],
            "latin1Alias": [
                "windows-1252",
                "€é"
            ],
            "asciiAlias": [
                "windows-1252",
                "€A"
            ],
            "iso8859_2": [
                "iso-8859-2",
                "Ąą"
            ],
            "iso8859_15": [
                "iso-8859-15",
                "€"
            ],
            "koi8r": [
                "koi8-r",
                "аб"
            ],
            "shiftJis": [
                "shift_jis",
                "あ日"
            ],
            "gbk": [
                "gbk",
                "你好"
            ],
            "gb18030": [
                "gb18030",
                "\u0080"
            ],
            "eucKr": [
                "euc-kr",
                "한"
            ],
            "big5": [
                "big5",
                "中"
            ],
            "eucJp": [
                "euc-jp",
                "あ"
            ],
            "labelSpaces": [
                "utf-8",
                "A"
            ],
            "unknown": "RangeError",
            "replacement": "RangeError",
            "fatal": "TypeError",
            "lossy": [
                "utf-8",
                "A�B"
            ],
            "bom": [
                "A",
                2
            ],
            "streamed": [
                "",
                "€",
                ""
            ],
            "streamed16": [
                "",
                "😀"
            ],
            "decoderStream": [
                "utf-16le",
                "h😀"
            ]
        }"#,
    );
}

/// CompressionStream and DecompressionStream: gzip, deflate and deflate-raw round trips, Node's
/// gzip output, corrupt and truncated input.
#[test]
fn compression_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "compression",
        r#"{
            "roundTrips": {
                "gzip": [
                    true,
                    true
                ],
                "deflate": [
                    true,
                    true
                ],
                "deflate-raw": [
                    true,
                    true
                ]
            },
            "fromNode": "hello hello hello hello",
            "deflateHeader": "789c",
            "gzipMagic": "1f8b08",
            "corrupt": "TypeError",
            "truncated": "TypeError",
            "badFormat": "TypeError"
        }"#,
    );
}

/// URLPattern: groups, wildcards, base URLs, init objects, ignoreCase.
#[test]
fn urlpattern_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "urlpattern",
        r#"{
            "test": [
                true,
                false
            ],
            "groups": {
                "rest": "a/b",
                "id": "42"
            },
            "input": "/books/42/a/b",
            "components": [
                "*",
                "*",
                "/books/:id(\\d+)/:rest*",
                "*"
            ],
            "host": {
                "sub": "api"
            },
            "base": [
                true,
                false,
                "/api/:v"
            ],
            "init": true,
            "noMatch": null,
            "invalid": "TypeError",
            "wildcard": {
                "0": "a/b.txt"
            },
            "optional": [
                true,
                true
            ],
            "caseInsensitive": true
        }"#,
    );
}

/// Request.signal and redirect, clones that tee their bodies, and which headers are immutable
/// (an incoming request's and Response.redirect()'s; not Response.error()'s nor a copy's).
#[test]
fn requests_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "requests",
        r#"{
            "signal": [
                true,
                true,
                false
            ],
            "signalFollows": true,
            "redirect": [
                "follow",
                "manual"
            ],
            "requestClone": [
                "twice",
                "twice"
            ],
            "responseClone": [
                "tee",
                "tee"
            ],
            "cloneAfterRead": "TypeError",
            "incomingHeaders": "TypeError",
            "redirectHeaders": "TypeError",
            "errorHeaders": null,
            "newResponseHeaders": null,
            "fetchedStyle": null
        }"#,
    );
}

/// Response.json of values JSON cannot express answers "undefined", as workerd does.
#[test]
fn response_json_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "response_json",
        r#"{
            "undefined": [
                200,
                "application/json",
                "undefined"
            ],
            "null": [
                200,
                "application/json",
                "null"
            ],
            "number": [
                200,
                "application/json",
                "1"
            ],
            "fn": [
                200,
                "application/json",
                "undefined"
            ]
        }"#,
    );
}

/// structuredClone: class instances arrive as plain objects, transfer detaches the source.
#[test]
fn structured_clone_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "structured_clone",
        r#"{
            "classInstance": [
                "{\"x\":1}",
                true,
                null
            ],
            "transfer": [
                0,
                8,
                true
            ],
            "transferTwice": null,
            "func": "DataCloneError",
            "errorClone": [
                true,
                "r"
            ]
        }"#,
    );
}

/// URLSearchParams.has and delete with a value.
#[test]
fn search_params_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "search_params",
        r#"{
            "has": [
                true,
                false,
                true
            ],
            "afterDelete": "a=2&b=3",
            "size": 2
        }"#,
    );
}

/// URL parsing edge cases: path encoding, dot segments, IDNA, IPv4 forms, backslashes.
#[test]
fn urls_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "urls",
        r#"{
            "path": "http://example.com/a%20b/%7Efoo/%C3%BC?q=a%20b#frag%20ment",
            "dots": "http://example.com/a/d",
            "idna": "http://xn--bcher-kva.example/",
            "idnaUpper": "http://example.xn--om-3ia/",
            "punycode": "http://xn--bcher-kva.example/",
            "ipv4": "http://127.0.0.1/",
            "ipv6": "http://[::1]/",
            "backslash": "http://example.com/a/b",
            "badHost": "TypeError",
            "relative": "http://h.com/a/x?y#z",
            "special": "foo://host/a%20b",
            "port": "https://h.com/",
            "canParse": [
                true,
                false
            ],
            "parse": "null"
        }"#,
    );
}

/// A body stream that yields strings is refused.
#[test]
fn stream_strings_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "stream_strings",
        r#"{
            "viaResponse": "TypeError"
        }"#,
    );
}

/// The global's own timers are Node's, as on workerd: setTimeout/setInterval answer a Timeout
/// (ref, unref, hasRef, refresh, close, a number where one is wanted, Node's argument errors),
/// the prototype's Web timers a number, setImmediate an Immediate; callbacks get the global as
/// `this`; timers set for the same moment fire in the order they were set.
#[test]
fn node_timers_answer_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "node_timers",
        r#"{
            "functions": [["setTimeout", "setTimeout", 2, "setTimeout", 0, false], ["setInterval", "setInterval", 2, "setInterval", 0, false], ["clearTimeout", "clearTimeout", 1, "clearTimeout", 0, false], ["clearInterval", "clearInterval", 1, "clearInterval", 0, false], ["setImmediate", "setImmediate", 0, "setImmediate", 0, true], ["clearImmediate", "clearImmediate", 0, "clearImmediate", 0, true], ["queueMicrotask", "queueMicrotask", 0, "queueMicrotask", 0, true]],
            "timeout": ["object", "[object Object]", "Timeout", 1, ["close", "constructor", "hasRef", "ref", "refresh", "unref"], ["Symbol(Symbol.dispose)", "Symbol(Symbol.toPrimitive)"], [], "{}", "number", true],
            "methods": [true, true, false, true, true, true, true],
            "webTimer": "number",
            "fired": ["zero 1", "zero 2", "zero 3", "immediate", "d", "e", "interval", "interval"],
            "interval": ["Timeout", "function"],
            "immediate": [["constructor", "hasRef", "ref", "unref"], "[object Immediate]", "NaN", false, null, null, "{}"],
            "errors": ["TypeError: The \"callback\" argument must be of type function. Received type string ('x') [ERR_INVALID_ARG_TYPE]", "TypeError: The \"callback\" argument must be of type function. Received undefined [ERR_INVALID_ARG_TYPE]", "TypeError: The \"callback\" argument must be of type function. Received type number (1) [ERR_INVALID_ARG_TYPE]", "TypeError: The \"callback\" argument must be of type function. Received an instance of Object [ERR_INVALID_ARG_TYPE]", null, null, null],
            "args": ["p", "q"],
            "receiver": "the global",
            "refreshed": 2,
            "negative": "ran",
            "disposed": "disposed"
        }"#,
    );
}

/// workerd's IdentityTransformStream and FixedLengthStream: bytes through a byte readable
/// (strings as UTF-8, BYOB reads), a write of anything else refused, abort and cancel carried
/// across, and FixedLengthStream's length: arguments checked, too many or too few bytes error the
/// readable. (One difference is left out: a write to workerd's waits until its bytes are read.)
#[test]
fn identity_streams_answer_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "identity_streams",
        r#"{
            "types": [
                "function",
                "function"
            ],
            "protoI": true,
            "protoF": true,
            "lengths": [
                0,
                0
            ],
            "ownI": [
                "constructor"
            ],
            "ownF": [
                "constructor"
            ],
            "tag": [
                "[object IdentityTransformStream]",
                "[object FixedLengthStream]"
            ],
            "enumerable": true,
            "ident": [
                "[object Uint8Array]:3",
                "[object Uint8Array]:4",
                "[object Uint8Array]:5"
            ],
            "identString": [
                "ok",
                [
                    97,
                    98,
                    99
                ]
            ],
            "identNumber": [
                "write TypeError: This TransformStream is being used as a byte stream, but received an object of non-ArrayBuffer/ArrayBufferView type on its writable side.",
                "pending"
            ],
            "identByob": [
                [
                    9,
                    8
                ],
                false,
                [
                    7,
                    6
                ],
                false,
                true
            ],
            "identAbort": "read Error: boom",
            "identCancel": "write Error: gone",
            "identOptions": "object",
            "fixed": [
                "[object Uint8Array]:2",
                "[object Uint8Array]:2"
            ],
            "fixedShort": [
                "ok",
                "read TypeError: FixedLengthStream did not see all expected bytes before close()."
            ],
            "fixedLong": [
                "ok",
                "read TypeError: Attempt to write too many bytes through a FixedLengthStream."
            ],
            "fixedZero": [],
            "fixedArguments": [
                "TypeError: Failed to construct 'FixedLengthStream': constructor parameter 1 is not of type 'bigint'.",
                "TypeError: The value cannot be converted because it is negative and this API expects a positive bigint.",
                "[object FixedLengthStream]",
                "TypeError: FixedLengthStream requires an integer expected length less than 2^53.",
                "[object FixedLengthStream]",
                "[object FixedLengthStream]"
            ],
            "fixedHeaders": [
                null,
                [],
                null
            ]
        }"#,
    );
}

/// node:stream: Readable (from, push, data events, states, setEncoding), Writable (encodings, finish
/// and close, highWaterMark and drain, errors), Transform, PassThrough, Duplex, pipe, pipeline
/// (callback and promise), finished.
#[test]
fn node_stream_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "node_stream",
        r#"{
            "fromIterable": [
                "a",
                "b",
                "c"
            ],
            "data": [
                [
                    true,
                    "x0"
                ],
                [
                    true,
                    "x1"
                ],
                [
                    true,
                    "x2"
                ]
            ],
            "written": [
                [
                    true,
                    "one",
                    "buffer"
                ],
                [
                    true,
                    "two",
                    "buffer"
                ],
                [
                    true,
                    "three",
                    "buffer"
                ]
            ],
            "events": [
                "finish",
                "close"
            ],
            "piped": [
                "P",
                "Q"
            ],
            "failed": "boom",
            "objects": [
                {
                    "a": 1
                },
                {
                    "b": 2
                }
            ],
            "viaPipe": [
                "m",
                "n"
            ],
            "done": "finished",
            "accepted": [
                true,
                false,
                false
            ],
            "drained": "drain",
            "fromDuplex": [
                "d"
            ],
            "passed": [
                "pass"
            ],
            "errored": [
                "write failed",
                true
            ],
            "shape": [
                "function",
                true,
                "function",
                true
            ],
            "states": [
                false,
                true,
                true,
                false,
                true
            ],
            "encoding": [
                "string",
                "é"
            ]
        }"#,
    );
}

/// node:stream edge semantics: paused reads with read(n), flush, object-mode writes, backpressure
/// over many chunks, leaving an iteration early, write after end, generator sources, premature close.
#[test]
fn node_stream_edges_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "node_stream_edges",
        r#"{
            "reads": [
                "ab",
                "cd",
                "ef"
            ],
            "flushed": [
                "bodytail"
            ],
            "objects": [
                [
                    "object",
                    null
                ],
                [
                    "string",
                    null
                ]
            ],
            "many": [
                "1",
                "2",
                "3",
                "4",
                "5",
                "6"
            ],
            "brokenOut": [
                3,
                true
            ],
            "afterEnd": "ERR_STREAM_WRITE_AFTER_END",
            "generated": [
                "g1",
                "g2"
            ],
            "fromGenerator": [
                "g1",
                "g2"
            ],
            "premature": "ERR_STREAM_PREMATURE_CLOSE"
        }"#,
    );
}

/// zlib (sync, callback and stream forms, Node's own gzip output, crc32), querystring,
/// stream/consumers, diagnostics_channel (workerd's channels have no `name`), perf_hooks, console.
#[test]
fn more_modules_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "more_modules",
        r#"{
            "roundTrips": {
                "gzipSync": [
                    true,
                    true,
                    true
                ],
                "deflateSync": [
                    true,
                    true,
                    true
                ],
                "deflateRawSync": [
                    true,
                    true,
                    true
                ]
            },
            "fromNode": "hello hello hello hello",
            "unzip": "z",
            "gunzipAsync": "hello hello hello hello",
            "streamed": true,
            "corrupt": "Error",
            "crc32": [
                907060870,
                222957957
            ],
            "constants": [
                9,
                0
            ],
            "qsParse": {
                "a": [
                    "1",
                    "3"
                ],
                "b": "2",
                "c": " x y",
                "d": "",
                "e": ""
            },
            "qsStringify": "a=1&a=2&b=x%20y&c=%C3%BC%26&d=true&e=&f=",
            "qsCustom": "a:1;b:2",
            "qsEscape": [
                "a%20b%26c%2F%C3%BC",
                "a b%zz+c"
            ],
            "consumers": [
                "ab",
                {
                    "x": 1
                },
                "bu",
                2
            ],
            "channels": [
                false,
                [
                    [
                        1,
                        "nano:test"
                    ]
                ],
                false,
                false,
                null
            ],
            "perf": [
                "number",
                true
            ],
            "console": [
                true,
                "function"
            ]
        }"#,
    );
}

/// The process survives every Intl constructor and locale method across many locales, time zones
/// and bad options, while a neighbour app keeps answering. Before ICU data was loaded, the first
/// `Intl.DateTimeFormat` aborted the whole process.
#[test]
fn intl_everywhere_never_kills_the_node() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "storm.example", "entrypoint": "intl-storm/app.js",
          "limits": { "workers": 2, "cpu_ms": 10000, "timeout_secs": 60 } },
        { "hostname": "neighbour.example", "entrypoint": "hello/app.js", "env": { "NAME": "n" } }
    ] }));
    block_on(async {
        for round in 0..12 {
            let reply = nano.get("storm.example", &format!("/?round={round}")).await;
            // workerd answers 407 results for every round of the same fixture.
            assert_eq!(reply.status, 200, "round {round}: {}", reply.body);
            assert_eq!(reply.json()["results"], 407, "round {round}");
            let neighbour = nano.get("neighbour.example", "/").await;
            assert_eq!(
                (neighbour.status, neighbour.body.as_str()),
                (200, "hello from n")
            );
        }
    });
}

/// Node modules that reach the machine are refused when the app loads, naming the module and
/// what is available instead; the node serves its other apps.
#[test]
fn refused_node_modules_fail_at_load_with_the_module_named() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "fs.example", "entrypoint": "node-refused/app.js" },
        { "hostname": "bare.example", "entrypoint": "node-bare/app.js" }
    ] }));
    block_on(async {
        let reply = nano.get("fs.example", "/").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("x-nano-error"), Some("app-unavailable"));
        for needle in [
            "import \\\"node:fs\\\" in app.js",
            "node:fs is not available",
            "no file system",
            "node:buffer",
        ] {
            assert!(reply.body.contains(needle), "{needle}: {}", reply.body);
        }
        // Bare Node names resolve as in Node (npm packages import them so). workerd's answer:
        let reply = nano.get("bare.example", "/").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            json!({ "heard": "hi", "hash": "c22b5f9178342609428d6f51b2c5af4c0bde6a42", "format": "n=1" })
        );
    });
}

/// A decompression bomb whose output the app keeps ends that request at `memory_mb` (bytes made
/// natively count like any ArrayBuffer), and an isolate cannot open streams without bound; the
/// worker serves on after both.
#[test]
fn compression_bombs_and_stream_floods_end_the_request_not_the_node() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "bomb.example", "entrypoint": "codec-bomb/app.js",
        "limits": { "workers": 1, "cpu_ms": 30000, "memory_mb": 32, "timeout_secs": 60 }
    }] }));
    block_on(async {
        for path in ["/bomb", "/zlib-bomb"] {
            let reply = nano.get("bomb.example", path).await;
            assert_eq!(reply.status, 503, "{path}: {}", reply.body);
            assert_eq!(reply.header("x-nano-error"), Some("memory-limit"), "{path}");
        }
        let reply = nano.get("bomb.example", "/many").await;
        assert_eq!(
            reply.body,
            "TypeError after 64: too many open TextDecoder, compression and digest streams in \
             this isolate (at most 64); finish, cancel or drop some first"
        );
        // The first request's streams ended with it (context reset): the cap is whole again.
        let reply = nano.get("bomb.example", "/many").await;
        assert!(
            reply.body.starts_with("TypeError after 64"),
            "{}",
            reply.body
        );
        let reply = nano.get("bomb.example", "/small").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "packed 1 MiB into under 4 KiB")
        );
    });
}

/// URLs that cannot become a V8 string: an invalid one of V8's longest string length (the error
/// quoting it was longer still) and one that percent-encoding grows past that length. Both were a
/// panic inside an op, which aborts the process; both are TypeErrors for that request now. (The
/// slowest test in the suite: a debug build parses 512 MiB of URL in about 25 s.)
#[test]
fn urls_longer_than_a_string_can_be_are_type_errors_not_aborts() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "url.example", "entrypoint": "huge-url/app.js",
        "limits": { "workers": 1, "cpu_ms": 60000, "memory_mb": 2048, "timeout_secs": 120 }
    }] }));
    block_on(async {
        let reply = nano.get("url.example", "/invalid").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "TypeError: Invalid URL \"xxxxxxxxxxxxxxxxxxxxxxxxxxx")
        );
        let reply = nano.get("url.example", "/encoded").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "TypeError: Invalid URL: the URL is 540000009 bytes ")
        );
    });
}

/// The Node layer and the rarer Web globals are compiled on first use: an app that reaches
/// Buffer, process, URLPattern and MessageChannel only by computed names (nothing built into its
/// snapshot) gets them in every request, with process.env filled. workerd answers the same.
#[test]
fn node_globals_built_on_first_use_work_in_every_request() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "lazy.example", "entrypoint": "node-lazy/app.js",
        "limits": { "workers": 1 }, "env": { "NAME": "n" }
    }] }));
    block_on(async {
        for _ in 0..3 {
            let reply = nano.get("lazy.example", "/").await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, "6869 n true 7 true")
            );
        }
    });
}

/// console formats its arguments as util.format does: workerd's own output for the same app
/// (tests/fixtures/console-format), line by line.
#[test]
fn console_output_is_formatted_as_on_workerd() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "log.example", "entrypoint": "console-format/app.js", "limits": { "workers": 1 }
    }] }));
    let reply = block_on(nano.get("log.example", "/"));
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    for line in [
        "{ a: 1, b: 'two', c: [ 1, 2, 3 ], d: { e: { f: [Object] } } }",
        "text 42 true null undefined [ 1, 'a' ] Map(1) { 'k' => 1 }",
        "x is 5 { extra: 1 }",
        "bad Symbol(s) 10n [Function (anonymous)]",
        "warned { w: 1 }",
    ] {
        let logged = format!("nano::console: {line} hostname=log.example");
        nano.log.wait_for(line, |text| text.contains(&logged));
    }
}

/// Language built-ins newer than V8 13.7 that Workers have: Float16Array (a V8 flag), explicit
/// resource management's library, Map/WeakMap upsert, Math.sumPrecise and Iterator.concat (the
/// runtime's language.js), and Intl.Locale without its removed info getters.
#[test]
fn language_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "language",
        r#"{
            "float16": {
                "array": [
                    1.3369140625,
                    "Infinity",
                    0,
                    "-0",
                    0.0999755859375
                ],
                "bytes": 2,
                "f16round": [
                    1.3369140625,
                    0,
                    65504,
                    "-Infinity"
                ],
                "view": [
                    1.3369140625,
                    -65504,
                    [
                        61,
                        89,
                        255,
                        251
                    ]
                ],
                "tag": "[object Float16Array]"
            },
            "resources": {
                "log": [
                    "adopt adopted",
                    "deferred",
                    "dispose used",
                    "async deferred",
                    "async adopt v",
                    "async dispose",
                    "sync in async"
                ],
                "disposedAfterMove": true,
                "movedDisposed": true,
                "suppressed": [
                    "SuppressedError",
                    "An error was suppressed during disposal",
                    [
                        "stack",
                        "message",
                        "error",
                        "suppressed"
                    ],
                    "first",
                    "SuppressedError",
                    "second",
                    "third",
                    true,
                    true
                ],
                "made": [
                    true,
                    "m",
                    1,
                    2,
                    [
                        "stack",
                        "message",
                        "error",
                        "suppressed"
                    ],
                    [
                        "stack",
                        "error",
                        "suppressed"
                    ]
                ],
                "errorShape": [
                    3,
                    "SuppressedError",
                    true,
                    false,
                    "SuppressedError",
                    "",
                    [
                        "constructor",
                        "name",
                        "message"
                    ]
                ],
                "asyncResult": true,
                "asyncError": [
                    "SuppressedError",
                    "a",
                    "b"
                ],
                "asyncWrongReceiver": "TypeError",
                "stacks": [
                    [
                        "constructor",
                        "use",
                        "dispose",
                        "adopt",
                        "defer",
                        "move",
                        "disposed",
                        "Symbol(Symbol.dispose)",
                        "Symbol(Symbol.toStringTag)"
                    ],
                    true,
                    0,
                    [
                        "constructor",
                        "use",
                        "disposeAsync",
                        "adopt",
                        "defer",
                        "move",
                        "disposed",
                        "Symbol(Symbol.asyncDispose)",
                        "Symbol(Symbol.toStringTag)"
                    ],
                    true,
                    "[object DisposableStack]",
                    "[object AsyncDisposableStack]",
                    true
                ],
                "errors": [
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "ReferenceError",
                    "ReferenceError",
                    "ReferenceError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError"
                ],
                "iteratorDispose": [
                    "function",
                    "[Symbol.dispose]",
                    0,
                    "[Symbol.asyncDispose]",
                    [
                        0,
                        0
                    ]
                ],
                "globals": [
                    [
                        true,
                        false,
                        true
                    ],
                    [
                        true,
                        false,
                        true
                    ],
                    [
                        true,
                        false,
                        true
                    ]
                ],
                "symbols": [
                    "symbol",
                    "symbol"
                ]
            },
            "upsert": {
                "getOrInsert": [
                    1,
                    3,
                    [
                        [
                            "a",
                            1
                        ],
                        [
                            "b",
                            3
                        ]
                    ]
                ],
                "computed": [
                    1,
                    "made c",
                    "outer",
                    "outer"
                ],
                "minusZero": [
                    false,
                    false
                ],
                "weak": [
                    "k",
                    "o",
                    "c",
                    "o"
                ],
                "errors": [
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError"
                ],
                "shape": [
                    2,
                    2,
                    "getOrInsert",
                    false,
                    2
                ]
            },
            "sumPrecise": {
                "sums": [
                    "-0",
                    "-0",
                    "-0",
                    0,
                    0.1,
                    0.6,
                    1,
                    1.0000000000000002,
                    1e+308,
                    "Infinity",
                    1.7976931348623157e+308,
                    "Infinity",
                    1.7976931348623157e+308,
                    "-Infinity",
                    1e-323,
                    "NaN",
                    "Infinity",
                    "NaN",
                    "-Infinity",
                    1,
                    3,
                    9007199254740994,
                    1e-310
                ],
                "iterable": 6,
                "errors": [
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError"
                ],
                "closed": true,
                "shape": [
                    1,
                    false
                ]
            },
            "concat": {
                "values": [
                    1,
                    2,
                    3,
                    [
                        4,
                        5
                    ]
                ],
                "empty": [],
                "tag": "[object Iterator Helper]",
                "helper": true,
                "first": [
                    0,
                    1
                ],
                "closed": 1,
                "errors": [
                    "TypeError",
                    "TypeError",
                    "TypeError",
                    "TypeError"
                ],
                "length": 0
            },
            "locale": {
                "getters": [
                    false,
                    false,
                    false,
                    false,
                    false,
                    false,
                    false
                ],
                "methods": [
                    [
                        "gregory"
                    ],
                    [
                        "h12"
                    ],
                    {
                        "direction": "ltr"
                    },
                    {
                        "firstDay": 7,
                        "weekend": [
                            6,
                            7
                        ]
                    }
                ]
            }
        }"#,
    );
}

/// What libraries read off Web API objects: `Object.prototype.toString` names every Web API
/// class; Event's members and constants; DOMException's legacy codes; console's devtools
/// methods; navigator; Headers.getAll; WebSocketPair destructuring; timingSafeEqual.
#[test]
fn shapes_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "shapes",
        r#"{
            "tags": [
                "[object Headers]",
                "[object Request]",
                "[object Response]",
                "[object URL]",
                "[object URLSearchParams]",
                "[object FormData]",
                "[object Blob]",
                "[object File]",
                "[object ReadableStream]",
                "[object ReadableStreamDefaultReader]",
                "[object ReadableStreamBYOBReader]",
                "[object WritableStream]",
                "[object WritableStreamDefaultWriter]",
                "[object TransformStream]",
                "[object TextEncoder]",
                "[object TextDecoder]",
                "[object TextEncoderStream]",
                "[object TextDecoderStream]",
                "[object CompressionStream]",
                "[object DecompressionStream]",
                "[object Event]",
                "[object EventTarget]",
                "[object CustomEvent]",
                "[object AbortController]",
                "[object AbortSignal]",
                "[object DOMException]",
                "[object MessageChannel]",
                "[object MessagePort]",
                "[object MessageEvent]",
                "[object Crypto]",
                "[object SubtleCrypto]",
                "[object ByteLengthQueuingStrategy]",
                "[object CountQueuingStrategy]",
                "[object URLPattern]",
                "[object CloseEvent]",
                "[object ErrorEvent]",
                "[object WebSocketPair]"
            ],
            "tagDescriptor": [
                "Headers",
                true,
                false,
                true
            ],
            "event": {
                "before": [
                    true,
                    true,
                    0,
                    false,
                    true,
                    false,
                    null,
                    [],
                    [
                        0,
                        1,
                        2,
                        3,
                        2
                    ]
                ],
                "afterPrevent": [
                    false,
                    true
                ],
                "cancelBubble": true,
                "during": [
                    2,
                    1,
                    true,
                    true,
                    false
                ],
                "after": [
                    0,
                    0
                ],
                "returnValueReadOnly": "TypeError",
                "ownKeys": []
            },
            "console": [
                "object",
                false,
                [
                    null,
                    null,
                    null,
                    null
                ]
            ],
            "navigator": [
                [
                    "en"
                ],
                "",
                "en",
                1
            ],
            "getAll": [
                [
                    "a=1",
                    "b=2"
                ],
                [
                    "a=1",
                    "b=2"
                ],
                "TypeError",
                0
            ],
            "domException": [
                20,
                20,
                20,
                4,
                25,
                1,
                false
            ],
            "webSocketPair": [
                "object",
                "object",
                true,
                [
                    "0",
                    "1"
                ]
            ],
            "timingSafeEqual": [
                true,
                false,
                "TypeError",
                true,
                "TypeError",
                0,
                true
            ]
        }"#,
    );
}

/// crypto.subtle.wrapKey/unwrapKey (AES-GCM): raw and JWK (whose JSON text, in workerd's
/// member order, is what gets encrypted), and the refusals.
#[test]
fn key_wrapping_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "key_wrapping",
        r#"{
            "wrapped": "e1c4622320383c8aba14eb05778e2faf564d822c3634abaf82336484b67178f54d7ffaa8f2bfe4a65432630bf39913e1",
            "unwrapped": [
                "secret",
                "HMAC",
                [
                    "sign"
                ],
                true,
                "0707070707070707070707070707070707070707070707070707070707070707"
            ],
            "jwkText": "{\"kty\":\"oct\",\"key_ops\":[\"sign\",\"verify\"],\"alg\":\"HS256\",\"ext\":true,\"k\":\"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\"}",
            "fromJwk": [
                false,
                [
                    "verify"
                ],
                "SHA-256"
            ],
            "errors": [
                "InvalidAccessError",
                "InvalidAccessError",
                "OperationError",
                "OperationError",
                "InvalidAccessError",
                "SyntaxError"
            ]
        }"#,
    );
}

/// workerd's crypto.DigestStream: hashes written in pieces, strings, piped bodies, an abort,
/// bytesWritten as a BigInt, MD5 (there and in crypto.subtle.digest), and the refusals.
#[test]
fn digest_stream_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "digest_stream",
        r#"{
            "pieces": [
                "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
                "11",
                "bigint"
            ],
            "string": [
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "3",
                "bigint"
            ],
            "empty": [
                "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                "0",
                "bigint"
            ],
            "algorithms": [
                [
                    "8d2ce87d86f55fcfab770a047b090da23270fa206832dfea7e0c946fff451f819add242374be551b0d6318ed6c7d41d8",
                    "1",
                    "bigint"
                ],
                [
                    "7b54b66836c1fbdd13d2441d9e1434dc62ca677fb68f5fe66a464baadecdbd00576f8d6b5ac3bcc80844b7d50b1cc6603444bbe7cfcf8fc0aa1ee3c636d9e339",
                    "1",
                    "bigint"
                ]
            ],
            "md5": [
                [
                    "900150983cd24fb0d6963f7d28e17f72",
                    "3",
                    "bigint"
                ],
                "900150983cd24fb0d6963f7d28e17f72"
            ],
            "unknown": "NotSupportedError 9",
            "piped": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "aborted": "nope",
            "badWrite": "TypeError",
            "shape": [
                true,
                "DigestStream",
                0,
                "[object DigestStream]",
                "TypeError",
                true
            ]
        }"#,
    );
}

/// process.stdout, stderr and stdin: writes go to the log, none is a TTY, stdin is empty.
#[test]
fn stdio_answers_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "stdio",
        r#"{
            "types": [
                "object",
                "object",
                "object"
            ],
            "writes": [
                true,
                true,
                true
            ],
            "tty": [
                "undefined",
                "undefined",
                1,
                2,
                0
            ],
            "methods": [
                "function",
                "function",
                "function"
            ],
            "stdin": 0
        }"#,
    );
    // What was written is in the app's log, stdout at info and stderr at error.
    nano.log.wait_for("the writes", |t| {
        t.contains("to stdout") && t.contains("to stderr")
    });
    let line = |needle: &str| {
        nano.log
            .text()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(line("to stdout").contains("INFO"), "{}", line("to stdout"));
    assert!(line("to stderr").contains("ERROR"), "{}", line("to stderr"));
}

/// `request.cf`: an incoming request's is a frozen object holding the address it came from, as
/// standalone workerd gives it; one the app makes holds a JSON copy of the `cf` it was given.
/// Code written for Workers reads `request.cf.country` without a check: undefined, not a
/// TypeError.
#[test]
fn request_cf_answers_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "request_cf",
        r#"{
            "incoming": { "clientIp": "127.0.0.1:PORT" },
            "frozen": true,
            "same": true,
            "made": { "a": { "b": 1 }, "d": "1970-01-01T00:00:00.000Z", "n": null, "list": [1, 2] },
            "madeCopies": [false, true, false],
            "none": ["undefined", "undefined"],
            "copies": [true, false, false, false, { "z": 1 }],
            "refused": [
                "TypeError: Incorrect type for the 'cf' field on 'RequestInitializerDict': the provided value is not of type 'Object'.",
                "TypeError: Incorrect type for the 'cf' field on 'RequestInitializerDict': the provided value is not of type 'Object'.",
                "SyntaxError: \"undefined\" is not valid JSON",
                true
            ],
            "accessor": "function"
        }"#,
    );
}

/// `navigator` is a Navigator whose members are own read-only data properties, `userAgent`
/// workerd's (libraries test it to take their Workers path), with `sendBeacon` (its delivery is
/// in fetch::a_beacon_is_sent_after_the_response).
#[test]
fn navigator_answers_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "navigator",
        r#"{
            "own": ["languages", "language", "platform", "hardwareConcurrency", "userAgent"],
            "values": ["Cloudflare-Workers", 1, "en", ["en"], ""],
            "descriptor": [false, true, true],
            "tag": "[object Navigator]",
            "classes": ["function", true, "TypeError: Illegal constructor"],
            "assign": "TypeError: Cannot assign to read only property 'userAgent' of object '#<Navigator>'",
            "beacon": ["function", 0, ["constructor", "sendBeacon"]],
            "global": ["value", "writable", "enumerable", "configurable"]
        }"#,
    );
}

/// Request's `cache` (the modes workerd takes: `no-store`, `no-cache`), `integrity` (none: asking
/// for a check is an error, not a check silently skipped) and `keepalive`.
#[test]
fn request_members_answer_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "request_members",
        r#"{
            "incoming": ["undefined", "", false],
            "made": ["undefined", "no-store", "no-store", "no-store", "no-cache", "", false],
            "refused": [
                "TypeError: Unsupported cache mode: reload",
                "TypeError: Unsupported cache mode: bogus",
                "TypeError: Subrequest integrity checking is not implemented. The integrity option must be either undefined or an empty string."
            ]
        }"#,
    );
}

/// AES-CBC, AES-CTR (a counter that wraps, one that would repeat) and AES-KW (wrapping with
/// the integrity check on unwrap): ciphertexts, key shapes and refusals as on workerd.
#[test]
fn aes_modes_answer_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "aes_modes",
        r#"{
            "cbc": [
                "1bef9c6373bb4270595a1a3f3ed3f3e203deb1902b7e4baf3ec91b531c1c4b879d8cfe1343aabffcf3e3c08f4446ad50",
                "the quick brown fox jumps over the lazy dog",
                "0fd4bc02630715ead7c744f0b237600ecdb9974f641c0a8888b7627d0386a491320b5333660ff5490693c24c70d04359",
                "the quick brown fox jumps over the lazy dog",
                "c18ef56c3e43c7d6522af0254e61b72790e3df591c2f47a1ba76722836ec670789dc9deb85e91ead96b7941866acbbcc",
                "the quick brown fox jumps over the lazy dog",
                "OperationError",
                "7df1d87c51680f3d1a8e4727d4d71bf8",
                "OperationError: AES-CBC IV must be 16 bytes long (provided 12 bytes)."
            ],
            "ctr": [
                "c6dc62a6114fc5c9ae212e106ff0f662f6e7c3ae79a36e134f577d6473d15b1ac39b65cd67f3c05c916a50",
                "the quick brown fox jumps over the lazy dog",
                "c6dc62a6114fc5c9ae212e106ff0f662f6e7c3ae79a36e134f577d6473d15b1ac39b65cd67f3c05c916a50",
                "the quick brown fox jumps over the lazy dog",
                "f763d0ea37672b781f5bd0aef28dedefca745243205b2eadb287a1f83f7b31df00c2c2176265c8333fbfb6",
                "the quick brown fox jumps over the lazy dog",
                "OperationError: Counter block values will repeat.",
                "OperationError: Invalid counter of 0 bits length provided."
            ],
            "kw": [
                "53efcce86ef8cefee3259f70fc8079da901a40bf2b8db436285c71ec4bb39d53ed87910d089ba817",
                "040b121920272e353c434a51585f666d747b828990979ea5acb3bac1c8cfd6dd",
                "OperationError: AES-KW key unwrapping failed.",
                "OperationError: Unwrapped key bit length must be a multiple of 64 bits but unwrapped key has a length of 160 bits.",
                "InvalidAccessError: Requested key usage \"encrypt\" does not match any usage listed in this CryptoKey.",
                "72bdea09eb98961baf52491532c66d8dacd5a789e860e408a914f765c50da4f03e0e83236fa8a9c94cebfd6348888b51"
            ],
            "keys": [
                {
                    "name": "AES-CBC",
                    "length": 192
                },
                "A192CBC",
                "oct",
                [
                    "encrypt"
                ],
                32,
                {
                    "name": "AES-CTR",
                    "length": 128
                },
                "A128CTR",
                "A128KW",
                {
                    "name": "AES-KW",
                    "length": 256
                },
                "9594800c39156fa5a8f9f1475da545e66bfc4e5475bc140d85d9f53be55c47b0"
            ],
            "errors": [
                "DataError: Imported AES key length must be 128, 192, or 256 bits but provided 160.",
                "SyntaxError: Attempt to import secret AES-KW key with invalid usage \"encrypt\".",
                "OperationError: Generated AES key length must be 128, 192, or 256 bits but requested 100.",
                "DataError: Symmetric \"jwk\" key contains invalid \"alg\" value \"A128CBC\", expected \"A128CTR\"."
            ]
        }"#,
    );
}

/// ECDH on P-256: shared secrets from fixed JWK keys both ways, truncated and whole, a derived
/// AES key, key shapes and formats, and the refusals, as on workerd.
#[test]
fn ecdh_answers_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "ecdh",
        r#"{
            "bits": [
                "1aacf0cd8f162ba558747db9dee37a56a79e4bce8c14036575764fd4973dd570",
                "1aacf0cd8f162ba558747db9dee37a56a79e4bce8c14036575764fd4973dd570",
                "1aacf0cd8f162ba558747db9dee37a56",
                "1aacf0cd8f162ba558747db9dee37a56a79e4bce8c14036575764fd4973dd570",
                "OperationError: Derived key length (264 bits) is too long (should be at most 256 bits)."
            ],
            "derived": [
                {
                    "name": "AES-GCM",
                    "length": 128
                },
                "1aacf0cd8f162ba558747db9dee37a56"
            ],
            "shapes": [
                {
                    "name": "ECDH",
                    "namedCurve": "P-256"
                },
                "private",
                [
                    "deriveKey",
                    "deriveBits"
                ],
                "public",
                []
            ],
            "jwk": [
                "EC",
                "P-256",
                "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
                "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE",
                "none",
                [
                    "deriveKey",
                    "deriveBits"
                ]
            ],
            "spki": "3059301306072a8648ce3d020106082a8648ce3d030107034200047fcdce2770f6c45d4183cbee6fdb4b7b580733357be9ef13bacf6e3c7bd15445c7f144cd1bbd9b7e872cdfedb9eeb9f4b3695d6ea90b24ad8a4623288588e5ad",
            "pkcs8": "1aacf0cd8f162ba558747db9dee37a56a79e4bce8c14036575764fd4973dd570",
            "generated": [
                [
                    "deriveBits"
                ],
                [],
                {
                    "name": "ECDH",
                    "namedCurve": "P-256"
                },
                true
            ],
            "errors": [
                "SyntaxError: Attempt to import public ECDH key with invalid usage \"deriveBits\".",
                "SyntaxError: Attempt to import private ECDH key with invalid usage \"sign\".",
                "InvalidAccessError: Private key for derivation is using \"ECDH\" while public key is using \"ECDSA\".",
                "InvalidAccessError: The provided key has type \"private\", not \"public\"",
                "InvalidAccessError: Requested key usage \"deriveKey\" does not match any usage listed in this CryptoKey."
            ]
        }"#,
    );
}

/// X25519 with RFC 7748's keys: the RFC's shared secret both ways, a derived AES key, the key
/// formats (workerd's PKCS#8 and SPKI bytes), generated pairs, and the refusals (a peer key of
/// small order among them), as on workerd.
#[test]
fn x25519_answers_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "x25519",
        r#"{
            "bits": [
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
                "4a5d9d5ba4ce2de1",
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
                "OperationError: Derived key length (264 bits) is too long (should be at most 256 bits)."
            ],
            "derived": [
                {
                    "name": "AES-GCM",
                    "length": 256
                },
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
            ],
            "shapes": [
                {
                    "name": "X25519"
                },
                "private",
                [
                    "deriveKey",
                    "deriveBits"
                ],
                "public",
                [],
                {
                    "name": "X25519"
                }
            ],
            "jwk": [
                "OKP",
                "X25519",
                "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
                "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo",
                "none",
                [
                    "deriveKey",
                    "deriveBits"
                ]
            ],
            "spki": "302a300506032b656e032100de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            "pkcs8": "302e020100300506032b656e0422042077076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "reimported": [
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
            ],
            "generated": [
                [
                    "deriveBits"
                ],
                [],
                {
                    "name": "X25519"
                },
                32,
                true
            ],
            "errors": [
                "SyntaxError: Attempt to import public X25519 key with invalid usage \"deriveBits\".",
                "SyntaxError: Attempt to import private X25519 key with invalid usage \"sign\".",
                "InvalidAccessError: Base X25519 private key cannot be used to derive a key from a peer ECDH public key",
                "InvalidAccessError: The provided key has type \"private\", not \"public\"",
                "OperationError",
                "DataError: X25519 raw keys must be exactly 32-bytes (provided 31)."
            ]
        }"#,
    );
}

/// The runtime's own state is out of an app's reach, as workerd's C++ state is: streams,
/// readers, writers, Blobs, Files, signals, Requests and Responses have no own properties (so
/// `JSON.stringify` gives "{}", where a reader was a circular structure), the classes have no
/// symbol-keyed statics (through one an app read a non-extractable key's bytes and changed frozen
/// headers), and a CryptoKey's checks do not read its redefinable members.
#[test]
fn runtime_internals_are_unreachable_as_on_workerd() {
    let nano = node();
    assert_matches_workerd(
        &nano,
        "internals",
        r#"{
            "own": {"ReadableStream": [], "reader": [], "byobReader": [], "WritableStream": [], "writer": [], "TransformStream": [], "Blob": [], "File": [], "AbortSignal": [], "Request": [], "Response": [], "Headers": [], "URL": [], "Event": [], "incoming": [], "MessageChannel": ["port2", "port1"]},
            "json": {"ReadableStream": "{}", "reader": "{}", "byobReader": "{}", "WritableStream": "{}", "writer": "{}", "TransformStream": "{}", "Blob": "{}", "File": "{}", "AbortSignal": "{}", "Request": "{}", "Response": "{}", "Headers": "{}", "URL": "\"http://x/?a=1\"", "Event": "{}", "incoming": "{}", "MessageChannel": "{\"port2\":{},\"port1\":{}}"},
            "statics": ["AbortSignal.abort", "AbortSignal.any", "AbortSignal.timeout", "Event.AT_TARGET", "Event.BUBBLING_PHASE", "Event.CAPTURING_PHASE", "Event.NONE", "ReadableStream.from", "Response.error", "Response.json", "Response.redirect", "URL.canParse", "URL.createObjectURL", "URL.parse", "URL.revokeObjectURL", "WebSocket.CLOSED", "WebSocket.CLOSING", "WebSocket.CONNECTING", "WebSocket.OPEN", "WebSocket.READY_STATE_CLOSED", "WebSocket.READY_STATE_CLOSING", "WebSocket.READY_STATE_CONNECTING", "WebSocket.READY_STATE_OPEN"],
            "key": [4, []],
            "blob": ["text/plain", 2, "f.txt", 5, "", "function", "function"],
            "onabort": [null, "function"],
            "frozen": "TypeError",
            "forged": [2, "InvalidAccessError", "InvalidAccessError"],
            "events": [["code", "name", "message", "stack"], "{\"code\":20,\"name\":\"AbortError\",\"message\":\"m\"}", "{\"wasClean\":false,\"reason\":\"r\",\"code\":1000}", "{\"ports\":[],\"source\":null,\"lastEventId\":\"\",\"origin\":\"\",\"data\":1}", "{\"ports\":[],\"source\":null,\"lastEventId\":\"\",\"origin\":\"\",\"data\":null}", ["constructor"], []],
            "bodyUsed": [false, true]
        }"#,
    );
}

/// The global's prototype chain as on workerd: the Web APIs on ServiceWorkerGlobalScope.prototype,
/// EventTarget on WorkerGlobalScope.prototype, addEventListener/dispatchEvent from the chain's
/// end; the global's own names (the language's, console, crypto, navigator, process, Buffer, self,
/// the timers...), their attributes and enumerability, illegal constructors, and assignments
/// (an own property shadows the prototype's; a lazy one assigned before its first read).
#[test]
fn the_global_scope_is_shaped_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "global_scope",
        r#"{
            "chain": ["[object ServiceWorkerGlobalScope]", "[object ServiceWorkerGlobalScope]", "[object WorkerGlobalScope]", true, true],
            "own": ["AggregateError", "Array", "ArrayBuffer", "AsyncDisposableStack", "Atomics", "BigInt", "BigInt64Array", "BigUint64Array", "Boolean", "Buffer", "DataView", "Date", "DisposableStack", "Error", "EvalError", "FinalizationRegistry", "Float16Array", "Float32Array", "Float64Array", "Function", "Infinity", "Int16Array", "Int32Array", "Int8Array", "Intl", "Iterator", "JSON", "Map", "Math", "NaN", "Number", "Object", "Promise", "Proxy", "RangeError", "ReferenceError", "Reflect", "RegExp", "ServiceWorkerGlobalScope", "Set", "SharedArrayBuffer", "String", "SuppressedError", "Symbol", "SyntaxError", "TypeError", "URIError", "Uint16Array", "Uint32Array", "Uint8Array", "Uint8ClampedArray", "WeakMap", "WeakRef", "WeakSet", "WebAssembly", "caches", "clearInterval", "clearTimeout", "console", "crypto", "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "eval", "global", "globalThis", "isFinite", "isNaN", "navigator", "origin", "parseFloat", "parseInt", "performance", "process", "scheduler", "self", "setInterval", "setTimeout", "undefined", "unescape"],
            "scope": ["AbortController", "AbortSignal", "Blob", "ByteLengthQueuingStrategy", "Cache", "CacheStorage", "CloseEvent", "CompressionStream", "CountQueuingStrategy", "Crypto", "CryptoKey", "CustomEvent", "DOMException", "DecompressionStream", "ErrorEvent", "Event", "File", "FixedLengthStream", "FormData", "Headers", "IdentityTransformStream", "MessageChannel", "MessageEvent", "MessagePort", "Navigator", "Performance", "PerformanceEntry", "PerformanceMark", "PerformanceMeasure", "PerformanceObserver", "PerformanceObserverEntryList", "PerformanceResourceTiming", "ReadableByteStreamController", "ReadableStream", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest", "ReadableStreamDefaultController", "ReadableStreamDefaultReader", "Request", "Response", "SubtleCrypto", "TextDecoder", "TextDecoderStream", "TextEncoder", "TextEncoderStream", "TransformStream", "TransformStreamDefaultController", "URL", "URLPattern", "URLSearchParams", "WebSocket", "WebSocketPair", "WorkerGlobalScope", "WritableStream", "WritableStreamDefaultController", "WritableStreamDefaultWriter", "atob", "btoa", "clearImmediate", "clearInterval", "clearTimeout", "constructor", "fetch", "queueMicrotask", "reportError", "setImmediate", "setInterval", "setTimeout", "structuredClone"],
            "worker": ["EventTarget", "constructor"],
            "target": ["function", "function", "function"],
            "where": ["fetch: scope wec function", "Request: scope wec function", "URL: scope wec function", "EventTarget: worker wec function", "WorkerGlobalScope: scope wec function", "ServiceWorkerGlobalScope: own wec function", "crypto: own wec object", "console: own w-c object", "origin: own -ec string", "self: own wec object", "global: own wec object", "Buffer: own wec function", "process: own wec object", "setTimeout: own wec function", "setImmediate: scope wec function", "navigator: own wec object", "caches: own wec object", "performance: own wec object", "scheduler: own wec object", "DisposableStack: own w-c function", "Iterator: own w-c function"],
            "keys": ["Buffer", "ServiceWorkerGlobalScope", "caches", "clearInterval", "clearTimeout", "crypto", "global", "navigator", "origin", "performance", "process", "scheduler", "self", "setInterval", "setTimeout"],
            "illegal": ["TypeError: Illegal constructor", "TypeError: Illegal constructor", "TypeError: Illegal constructor", 0, ["length", "name", "prototype"]],
            "readOnly": "TypeError: Cannot assign to read only property 'origin' of object '#<ServiceWorkerGlobalScope>'",
            "assigned": [true, "function", 1, "function", true, 2, "function"],
            "heard": 1
        }"#,
    );
}

/// Node's per-encoding Buffer methods (`latin1Slice`, `utf8Write`... which parsers such as
/// busboy call for speed) with Node's argument checks, `inspect()` and `Buffer.of`.
#[test]
fn buffer_encoding_methods_answer_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "buffer_encodings",
        r#"{
            "utf8": ["éll", [3, "0000616263000000"], [6, "6162636465660000"], 2, 3],
            "hex": ["c3a96c6c", [3, "0000abcdef000000"], [3, "abcdef0000000000"], 2, 3],
            "latin1": ["Ã©ll", [3, "0000616263000000"], [6, "6162636465660000"], 2, 3],
            "ascii": ["C)ll", [3, "0000616263000000"], [6, "6162636465660000"], 2, 3],
            "base64": ["w6lsbA==", [3, "000069b71d000000"], [4, "69b71d7900000000"], 2, 3],
            "base64url": ["w6lsbA", [3, "000069b71d000000"], [4, "69b71d7900000000"], 2, 3],
            "ucs2": ["꧃汬", [2, "0000610000000000"], [8, "6100620063006400"], 2, 3],
            "refused": ["TypeError: The \"start\" argument must be of type number. Received undefined", "TypeError: The \"end\" argument must be of type number. Received undefined", "TypeError: The \"start\" argument must be of type number. Received type string ('1')", "RangeError: The value of \"end\" is out of range. It must be >= 0 && <= 13. Received 99", "", "RangeError: The value of \"length\" is out of range. It must be >= 0 && <= 7. Received 8", "RangeError: The value of \"offset\" is out of range. It must be >= 0 && <= 8. Received 9", 1],
            "inspect": ["<Buffer 68 c3 a9 6c 6c 6f 20 77 c3 b6 72 6c 64>", "<Buffer 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 ... 10 more bytes>", 2],
            "of": ["01022c", true]
        }"#,
    );
}

/// performance as on workerd: User Timing (marks, measures and their entries; a measure from a
/// mark that does not exist starts at 0), the epoch clock (timeOrigin 0), Node's additions
/// (timerify, eventLoopUtilization, nodeTiming), the entry and observer classes,
/// `node:perf_hooks`, `reportError` and `origin`.
#[test]
fn performance_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "performance",
        r#"{
            "clock": ["number", true, 0, true, {"timeOrigin": 0}],
            "mark": ["a", "mark", 5, 0, {"x": 1}, [], {"name": "a", "entryType": "mark", "startTime": 5, "duration": 0, "detail": {"x": 1}}, null, true],
            "measures": [["m1", "measure", 5, true, null], [0, true], [10, 5], [1, 1], [0, true]],
            "entries": ["mark:a", "mark:b", "measure:m1", "measure:m2", "measure:m4", "measure:m6", "measure:m5"],
            "lookups": [1, 0, 2, 5, 0],
            "cleared": [["b"], 0],
            "refused": ["TypeError: Failed to execute 'mark' on 'Performance': parameter 1 is not of type 'string'.", "TypeError: Incorrect type for the 'detail' field on 'Options': the provided value is not of type 'Object'.", "TypeError: Failed to construct 'PerformanceMark': constructor parameter 1 is not of type 'string'.", "TypeError: Illegal constructor", "TypeError: Illegal constructor", "TypeError: Illegal constructor", "TypeError: Failed to construct 'PerformanceObserver': constructor parameter 1 is not of type 'Value'.", "TypeError: Illegal constructor", "TypeError: Illegal constructor", "TypeError: Failed to execute 'reportError' on 'ServiceWorkerGlobalScope': parameter 1 is not of type 'Value'."],
            "made": ["nm", [1], true, 0, "[object PerformanceMark]"],
            "node": [{"idle": 0, "active": 0, "utilization": 0}, ["uvMetricsInfo", "idleTime", "loopExit", "loopStart", "environment", "bootstrapComplete", "v8Start", "nodeStart"], "[object EventCounts]", 0, 5, "add", 2, null, null],
            "observer": [null, [], null, ["measure", "mark"]],
            "shape": [true, true, [], "[object Performance]", ["clearMarks", "clearMeasures", "clearResourceTimings", "constructor", "eventCounts", "eventLoopUtilization", "getEntries", "getEntriesByName", "getEntriesByType", "mark", "markResourceTiming", "measure", "nodeTiming", "now", "setResourceTimingBufferSize", "timeOrigin", "timerify", "toJSON"], ["constructor", "duration", "entryType", "name", "startTime", "toJSON"], ["constructor", "detail", "toJSON"], true],
            "perfHooks": [true, true, ["Performance", "PerformanceEntry", "PerformanceMark", "PerformanceMeasure", "PerformanceObserver", "PerformanceObserverEntryList", "PerformanceResourceTiming", "constants", "createHistogram", "default", "eventLoopUtilization", "monitorEventLoopDelay", "performance", "timerify"], "Error: The createHistogram method is not implemented", 7],
            "globals": [null, "function", "null"]
        }"#,
    );
}

/// structuredClone of the runtime's own objects as workerd serialises them: Blob, Headers,
/// DOMException and a Request without a body are copied, a Buffer arrives as a Uint8Array, a
/// body or stream "can only be serialized for RPC", and every other runtime class is refused with
/// its name (they became plain objects, and a DOMException a plain Error).
#[test]
fn structured_clone_of_runtime_objects_answers_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "clone_runtime_objects",
        r#"{
            "file": "DataCloneError: Could not serialize object of type \"File\". This type does not support serialization.",
            "stream": "DataCloneError: ReadableStream can only be serialized for RPC.",
            "signal": "DataCloneError: AbortSignal serialization is not enabled.",
            "request": ["[object Request]", "{}"],
            "closeEvent": "DataCloneError: Could not serialize object of type \"CloseEvent\". This type does not support serialization.",
            "url": "DataCloneError: Could not serialize object of type \"URL\". This type does not support serialization.",
            "response": "DataCloneError: ReadableStream can only be serialized for RPC.",
            "key": "DataCloneError: Could not serialize object of type \"CryptoKey\". This type does not support serialization.",
            "params": "DataCloneError: Could not serialize object of type \"URLSearchParams\". This type does not support serialization.",
            "form": "DataCloneError: Could not serialize object of type \"FormData\". This type does not support serialization.",
            "event": "DataCloneError: Could not serialize object of type \"Event\". This type does not support serialization.",
            "target": "DataCloneError: Could not serialize object of type \"EventTarget\". This type does not support serialization.",
            "encoder": "DataCloneError: Could not serialize object of type \"TextEncoder\". This type does not support serialization.",
            "pattern": "DataCloneError: Could not serialize object of type \"URLPattern\". This type does not support serialization.",
            "ws": "DataCloneError: Could not serialize object of type \"WebSocket\". This type does not support serialization.",
            "channel": "DataCloneError: Could not serialize object of type \"MessageChannel\". This type does not support serialization.",
            "cache": "DataCloneError: Could not serialize object of type \"Cache\". This type does not support serialization.",
            "mark": "DataCloneError: Could not serialize object of type \"PerformanceMark\". This type does not support serialization.",
            "navigator": "DataCloneError: Could not serialize object of type \"Navigator\". This type does not support serialization.",
            "crypto": "DataCloneError: Could not serialize object of type \"Crypto\". This type does not support serialization.",
            "buffer": ["[object Uint8Array]", "{\"0\":97,\"1\":98}"],
            "transform": "DataCloneError: Could not serialize object of type \"TransformStream\". This type does not support serialization.",
            "withBody": "DataCloneError: ReadableStream can only be serialized for RPC.",
            "plain": ["[object Object]", "{\"a\":1,\"b\":[2],\"c\":{}}"],
            "blob": [true, "a/b", 3, "hey"],
            "headers": [["a", "1"], ["set-cookie", "x"], ["set-cookie", "y"]],
            "domException": [true, "AbortError", "m", 20, "string", ["code", "name", "message", "stack"]],
            "requestCopy": [true, "http://x/p", "PUT", [["a", "b"]]],
            "nested": [true, true]
        }"#,
    );
}

/// Error stacks show the app's frames only, as on workerd, whose C++ never appears: not the
/// runtime's (`nano:runtime.js`), also when the runtime throws; an app's `Error.prepareStackTrace`
/// gets only the app's call sites, and one that throws or returns an object is honoured; a
/// `name` getter that throws is shown in V8's way; a stack read at the recursion limit still reads.
#[test]
fn error_stacks_show_the_apps_frames_as_on_workerd() {
    assert_matches_workerd(
        &node(),
        "stacks",
        r#"{
            "plain": "Error: y\n    at stacks (stacks.js:6:15)\n    at Object.fetch (app.js)",
            "runtimeThrow": ["    at stacks (stacks.js:7:23)", "    at Object.fetch (app.js)"],
            "captured": "Custom: msg\n    at stacks (stacks.js:9:9)\n    at Object.fetch (app.js)",
            "unnamed": "m",
            "badName": "<error: Error: name getter>",
            "async": "Error: async\n    at outer (stacks.js:17:66)\n    at async stacks (stacks.js:17:15)\n    at async Object.fetch (app.js)",
            "deep": [true, "RangeError: Maximum call stack size exceeded"],
            "hook": [2, "string", "stacks"],
            "hookThrows": "TypeError: from hook",
            "hookObject": {"an": "object"}
        }"#,
    );
}
