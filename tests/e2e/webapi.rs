//! Web platform conformance, one probe per area (tests/fixtures/webapi). Expected values come
//! from the specifications and published test vectors (FIPS 180 for SHA, the classic HMAC
//! examples for HMAC, the WHATWG URL/Encoding/DOM standards); where a behaviour is subtle the
//! comment names the reference it was checked against.

use nano_tests::{Nano, block_on};
use serde_json::{Value, json};

fn probe(nano: &Nano, name: &str) -> Value {
    let reply = block_on(nano.get("webapi.example", &format!("/{name}")));
    assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    reply.json()
}

fn node() -> Nano {
    Nano::start(
        // The RSA probes sign with 2048-bit keys in an unoptimised build: CPU is not under test.
        json!({ "apps": [{ "hostname": "webapi.example", "entrypoint": "webapi/app.js", "limits": { "workers": 1, "cpu_ms": 5000 } }] }),
    )
}

/// Each Web API area answers as specified (and as on workerd). `abort` also checks that
/// `AbortSignal.timeout` and `scheduler.wait` run on the runtime's timers, not on a `setTimeout`
/// the app replaced.
#[test]
fn web_platform_conformance() {
    let nano = node();
    assert_eq!(
        probe(&nano, "base64"),
        json!({ "btoa": "aGVsbG8=", "atob": "hello", "padless": "hello", "latin1": "//4=",
                "wide": "InvalidCharacterError", "bad": "InvalidCharacterError" })
    );
    assert_eq!(
        probe(&nano, "crypto"),
        json!({
            // FIPS 180-2 "abc" vectors.
            "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha512len": 64,
            // The widely published HMAC-SHA256 example: key "key", the quick brown fox.
            "hmac": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "verifies": true, "rejects": false, "uuid": true, "randomFilled": true,
            "quota": "QuotaExceededError", "unsupported": "NotSupportedError"
        })
    );
    assert_eq!(
        probe(&nano, "keys"),
        json!({
            // NIST SP 800-38D test vectors (AES-256-GCM, test cases 13 and 14).
            "aesEmpty": "530f8afbc74536b9a963b4f1c4cb738b",
            "aesBlock": "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
            "opened": true, "refused": "OperationError",
            // RFC 8032 section 7.1, test 1.
            "edSig": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            "edVerifies": true,
            "ecLength": 64, "ecVerifies": true, "ecRejects": false, "ecPublicLength": 65,
            "rsa": "NotSupportedError"
        })
    );
    assert_eq!(
        probe(&nano, "keyformats"),
        json!({
            // Against keys and signatures made by Node's Web Crypto (fixtures/webapi/vectors.js):
            // RSASSA-PKCS1-v1_5 is deterministic, so NANO's signature must equal Node's.
            "rs256MatchesNode": true, "pkcs8MatchesNode": true,
            "rs256": [true, true, false], "ps256": [true, true, false],
            "es256": [true, true, false], "eddsa": [true, true, false],
            "privateJwk": [true, true, true, true],
            "hmacJwk": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "algorithm": { "name": "RSASSA-PKCS1-v1_5", "modulusLength": 2048,
                           "publicExponent": "010001", "hash": { "name": "SHA-256" } },
            "spkiRoundTrip": [true, true, true],
            "jwkRoundTrip": [true, true, true, true, true],
            "pkcs8Export": true,
            "conversions": [true, true, true, true, true, true, true],
            "refusals": {
                "algMismatch": "DataError", "wrongKty": "DataError", "tooSmall": "DataError",
                "garbageSpki": "DataError", "spkiOfOtherKind": "DataError",
                "corruptPrivate": "DataError", "badBase64": "DataError", "usage": "SyntaxError",
                "notExtractable": "DataError", "keyOps": "DataError", "use": "DataError",
                "pssSalt": "NotSupportedError",
                "generate": "NotSupportedError", "ecPrivateMismatch": "DataError",
                "edPrivateMismatch": "DataError", "badPkcs8": "DataError",
                "pkcs8OfPublic": "NotSupportedError", "rawOfPrivate": "NotSupportedError",
                "privateAsSpki": "InvalidAccessError"
            }
        })
    );
    assert_eq!(
        probe(&nano, "derive"),
        json!({
            // RFC 6070 test 2 (PBKDF2-HMAC-SHA1) and RFC 5869 test case 1 (HKDF-SHA256).
            "pbkdf2": "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
            "hkdf": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            "aes": [256, "derived"], "hmacLength": 64,
            "refusals": {
                "tooManyIterations": "NotSupportedError", "tooMuchWork": "NotSupportedError",
                "wrappedIterations": "OperationError", "oddLength": "OperationError",
                "extractable": "SyntaxError", "generate": "NotSupportedError",
                "notKdf": "NotSupportedError", "wrongUsage": "InvalidAccessError",
                "hkdfTooLong": "OperationError"
            }
        })
    );
    assert_eq!(
        probe(&nano, "abort"),
        json!({ "aborted": true, "reason": "AbortError", "heard": 1, "timeout": "TimeoutError",
                "custom": "why", "throws": "AbortError" })
    );
    assert_eq!(
        probe(&nano, "clone"),
        json!({ "equal": true, "distinct": true, "cycle": true, "date": true, "map": true,
                "bytes": [1, 2], "fn": "DataCloneError" })
    );
    assert_eq!(
        probe(&nano, "encoding"),
        json!({ "length": 10, "roundtrip": "héllo ✓", "bom": "A", "keepBom": 2, "lossy": "\u{fffd}",
                "fatal": "TypeError", "label": "RangeError",
                // The check mark takes 3 bytes; "b" no longer fits (WHATWG Encoding).
                "into": { "read": 2, "written": 4 } })
    );
    assert_eq!(
        probe(&nano, "url"),
        json!({
            // Same results as workerd and the WHATWG URL test suite for these inputs.
            "href": "https://User:pw@example.com:8443/b/c?x=1&y=two+words#frag",
            "host": "example.com:8443",
            "origin": "https://example.com:8443",
            "pathname": "/b/c",
            "search": "?x=1&y=two+words",
            "params": "a=1&b=2",
            "idna": "xn--mnchen-3ya.example",
            "invalid": "TypeError",
            "canParse": true
        })
    );
    assert_eq!(
        probe(&nano, "headers"),
        json!({ "get": "2, 3", "cookies": ["a=1", "b=2"], "order": ["set-cookie", "set-cookie", "x-a", "x-b"],
                "has": true, "bad": "TypeError", "badNames": ["TypeError", "TypeError", "TypeError", "TypeError"], "token": "ok",
                "trimmed": "x y", "badValues": ["TypeError", "TypeError", "TypeError"],
                "methods": ["GET", "PATCH", "OPTIONS", "custom", "poſt"] })
    );
    // Checked against workerd 2026-11-17 (compat date 2026-11-01): the same probe, same answer.
    assert_eq!(
        probe(&nano, "forms"),
        json!({ "size": 4, "type": "text/plain", "text": "abcd", "slice": "bc", "names": ["nano", "again"],
                "file": [true, "notes.txt", "text/plain", "file body"], "multipart": true,
                "urlencoded": [["a", "1"], ["b", "two words"]], "blobBody": "abcd" })
    );
    assert_eq!(
        probe(&nano, "events"),
        json!({ "seen": ["ping"], "perf": "number", "ua": true, "micro": "ran" })
    );
}

/// Web Crypto is compiled into a context on first use when the app's source does not name it
/// (its snapshot then lacks it): each request's fresh context builds it again and gets the same
/// answers as workerd (2026-11-17, compat date 2026-11-01) gives to the same module.
#[test]
fn web_crypto_built_on_first_use_answers_in_every_request() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "lazy.example", "entrypoint": "lazy-crypto/app.js", "limits": { "workers": 1 } }
    ]}));
    for _ in 0..3 {
        let reply = block_on(nano.get("lazy.example", "/"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            json!({ "same": true, "proto": true, "key": true,
                    "accessor": ["function", true, true], "sig": [182, 0, 144, 227] })
        );
    }
}

/// The globals a context makes on first read (streams, Blob and FormData, URL, events and abort
/// signals, DOMException, TextEncoder/TextDecoder, console, crypto, performance...) when the
/// app's source does not name them: every request's fresh context makes them again, and reading
/// them through the global, assigning one first, reading one from a frozen global or first at
/// the stack's edge, the request's own signal and URL answer as workerd (2026-11-30, compat date
/// 2026-11-01) answers the same module.
#[test]
fn globals_made_on_first_read_answer_as_workerd_in_every_request() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "lazy.example", "entrypoint": "lazy-globals/app.js", "limits": { "workers": 1 } }
    ]}));
    let class = json!(["function", true, true, "function"]);
    let object = json!(["object", true, true, "object"]);
    let mut seen = serde_json::Map::new();
    for name in [
        "ReadableStream",
        "WritableStream",
        "TransformStream",
        "TextDecoderStream",
        "Blob",
        "File",
        "FormData",
        "URL",
        "URLSearchParams",
        "Event",
        "EventTarget",
        "AbortController",
        "AbortSignal",
        "DOMException",
        "TextEncoder",
        "TextDecoder",
    ] {
        seen.insert(name.into(), class.clone());
    }
    for name in ["console", "crypto", "performance", "navigator", "scheduler"] {
        seen.insert(name.into(), object.clone());
    }
    for _ in 0..3 {
        let reply = block_on(nano.get("lazy.example", "/a/../b%20c?q=1"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            json!({ "seen": seen, "assigned": 7, "blob": "ab", "stream": true,
                    "signal": [true, false, true], "aborted": [true, "AbortError"],
                    "url": ["http://lazy.example/b%20c?q=1", "/b%20c", "1"],
                    "atob": [true, "InvalidCharacterError"], "text": ["é", "é"],
                    "frozen": ["function", true], "edge": ["function", "function"] })
        );
    }
}
