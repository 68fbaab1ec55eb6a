// NANO runtime glue: Web Crypto's `crypto.subtle` (SubtleCrypto, CryptoKey), compiled into a
// context only when it first reads `crypto.subtle`, `SubtleCrypto` or `CryptoKey`
// (runtime/crypto.js compiles this script with the lazyScript op): a reset-on request
// deserialises its whole context, and most requests never sign or verify anything. Its value is the function that
// builds them, given the ops and the runtime's internal helpers. An app whose source names
// `crypto.subtle` gets them in its snapshot instead.
(function subtleCrypto(ops, helpers) {
  "use strict";
  const { kState, toBytes, B64, methods, tagClasses, utf8, fromUtf8 } = helpers;
  const hashName = (algorithm) => {
    const name = typeof algorithm === "string" ? algorithm : algorithm?.name;
    const upper = String(name).toUpperCase();
    if (!["SHA-1", "SHA-256", "SHA-384", "SHA-512"].includes(upper)) {
      throw new DOMException(`Unrecognized or unsupported hash algorithm ${JSON.stringify(name)}`, "NotSupportedError");
    }
    return upper;
  };
  const bufferOf = (data, what) => {
    try {
      return toBytes(data, what);
    } catch {
      throw new TypeError(`${what}: expected an ArrayBuffer, a TypedArray or a DataView`);
    }
  };
  const asArrayBuffer = (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  // What the runtime knows of `key` ({ type, extractable, algorithm, usages, secret }), for the
  // runtime alone: its checks read this, not the key's members, which an app can redefine (they
  // are configurable, as on workerd), and an extractable: false key's bytes never reach the app.
  let keyOf;
  const copyAlgorithm = (algorithm) => {
    const copy = { ...algorithm };
    if (algorithm.hash) copy.hash = { ...algorithm.hash };
    if (algorithm.publicExponent) copy.publicExponent = algorithm.publicExponent.slice();
    return copy;
  };
  class CryptoKey {
    #key;
    constructor(key, type, extractable, algorithm, usages, secret) {
      if (key !== kState) throw new TypeError("CryptoKey cannot be constructed; use crypto.subtle.importKey");
      this.#key = { type, extractable, algorithm: copyAlgorithm(algorithm), usages: [...usages], secret };
      // As on workerd: own read-only data properties, in this order (JSON.stringify shows them).
      const member = (value) => ({ value, enumerable: true, configurable: true, writable: false });
      Object.defineProperties(this, {
        usages: member(usages), algorithm: member(algorithm), extractable: member(extractable), type: member(type),
      });
    }
    static {
      keyOf = (key) => key.#key;
    }
  }
  const secretOf = (key) => keyOf(key).secret;
  const hmacKey = (key, usage) => checkKey(key, "HMAC", usage);
  const checkKey = (key, name, usage) => {
    if (!(key instanceof CryptoKey)) throw new TypeError("expected a CryptoKey");
    if (keyOf(key).algorithm.name !== name) throw new DOMException(`the key is not an ${name} key`, "InvalidAccessError");
    if (!keyOf(key).usages.includes(usage)) throw new DOMException(`Requested key usage "${usage}" does not match any usage listed in this CryptoKey.`, "InvalidAccessError");
    return secretOf(key);
  };
  const native = (kind, ...args) => {
    const [ok, value, message] = ops.crypto(kind, ...args);
    if (!ok) throw new DOMException(message, value);
    return value;
  };
  const algorithmName = (algorithm) => {
    const name = String(typeof algorithm === "string" ? algorithm : algorithm?.name);
    const known = {
      "HMAC": "HMAC", "AES-GCM": "AES-GCM", "AES-CBC": "AES-CBC", "AES-CTR": "AES-CTR", "AES-KW": "AES-KW",
      "ED25519": "Ed25519", "ECDSA": "ECDSA", "ECDH": "ECDH", "X25519": "X25519", "RSASSA-PKCS1-V1_5": "RSASSA-PKCS1-v1_5", "RSA-PSS": "RSA-PSS",
      "PBKDF2": "PBKDF2", "HKDF": "HKDF",
    }[name.toUpperCase()];
    if (!known) throw new DOMException(`crypto.subtle: algorithm ${JSON.stringify(name)} is not supported (HMAC, AES-GCM, AES-CBC, AES-CTR, AES-KW, Ed25519, X25519, ECDSA and ECDH on P-256, RSASSA-PKCS1-v1_5, RSA-PSS, PBKDF2 and HKDF are)`, "NotSupportedError");
    if (isEc(known) && typeof algorithm === "object" && algorithm.namedCurve !== undefined && algorithm.namedCurve !== "P-256") {
      throw new DOMException(`${known}: curve ${algorithm.namedCurve} is not supported (P-256 is)`, "NotSupportedError");
    }
    return known;
  };
  const isEc = (name) => name === "ECDSA" || name === "ECDH";
  // Key agreement: the private key derives bits with the peer's public key.
  const agrees = (name) => name === "ECDH" || name === "X25519";
  const isAes = (name) => name === "AES-GCM" || name === "AES-CBC" || name === "AES-CTR" || name === "AES-KW";
  // Usages in Web Crypto's order (workerd's and the browsers' `usages`), each once.
  const USAGE_ORDER = ["encrypt", "decrypt", "sign", "verify", "deriveKey", "deriveBits", "wrapKey", "unwrapKey"];
  // A key of `type` for `name` takes only the usages `allowed` (workerd's words when not).
  const checkUsages = (type, name, usages, allowed) => {
    const bad = usages.find((u) => !allowed.includes(u));
    if (bad !== undefined) throw new SyntaxError(`Attempt to import ${type} ${name} key with invalid usage ${JSON.stringify(bad)}.`);
    return usages;
  };
  // AES: GCM, CBC and CTR encrypt, decrypt, wrap and unwrap; KW only wraps and unwraps.
  const checkAesUsages = (name, usages) =>
    checkUsages("secret", name, usages, name === "AES-KW" ? ["wrapKey", "unwrapKey"] : ["encrypt", "decrypt", "wrapKey", "unwrapKey"]);
  // 128, 192 or 256 bits (ring's AES-GCM has no 192). `what` is "Imported" or "Generated".
  const aesLength = (name, length, error, what = "Generated") => {
    const bits = Number(length);
    if (name === "AES-GCM" ? bits !== 128 && bits !== 256 : bits !== 128 && bits !== 192 && bits !== 256) {
      const sizes = name === "AES-GCM" ? "128 or 256" : "128, 192, or 256";
      throw new DOMException(`${what} ${name === "AES-GCM" ? name : "AES"} key length must be ${sizes} bits but ${what === "Imported" ? "provided" : "requested"} ${length}.`, error);
    }
    return bits;
  };
  const makeKey = (type, extractable, algorithm, usages, secret) =>
    new CryptoKey(kState, type, Boolean(extractable), algorithm, USAGE_ORDER.filter((u) => usages.includes(u)), secret);
  const curveOf = (name) => (isEc(name) ? { name, namedCurve: "P-256" } : { name });
  // What each kind of asymmetric key may be used for (ECDH's public key: for nothing itself).
  const pairUsages = (name, type) => (agrees(name) ? (type === "private" ? ["deriveKey", "deriveBits"] : []) : [type === "private" ? "sign" : "verify"]);
  const checkPairUsages = (name, type, usages) => checkUsages(type, name, usages, pairUsages(name, type));

  // RSA signatures (keys are imported: ring cannot generate RSA keys). The key's secret is
  // { n, e } for a public key, plus the PKCS#8 DER for a private one. Every private key lives as
  // PKCS#8; a JWK is converted (and checked by ring) on import and converted back on export.
  const isRsa = (name) => name === "RSASSA-PKCS1-v1_5" || name === "RSA-PSS";
  const rsaScheme = (name) => (name === "RSA-PSS" ? "PSS" : "PKCS1");
  const jwkAlg = (key) => {
    const { name } = keyOf(key).algorithm;
    const bits = keyOf(key).algorithm.hash?.name?.slice(4);
    if (name === "HMAC") return `HS${bits}`;
    if (isAes(name)) return `A${keyOf(key).algorithm.length}${name.slice(4)}`;
    if (name === "RSA-PSS") return `PS${bits}`;
    if (name === "RSASSA-PKCS1-v1_5") return `RS${bits}`;
    return undefined;
  };
  const RSA_JWK_PRIVATE = ["d", "p", "q", "dp", "dq", "qi"];
  const bitLength = (bytes) => {
    let i = 0;
    while (i < bytes.length && bytes[i] === 0) i++;
    return i === bytes.length ? 0 : (bytes.length - i) * 8 - Math.clz32(bytes[i]) + 24;
  };

  const rsaKey = (type, extractable, name, algorithm, usages, secret) => {
    const hash = hashName(algorithm.hash);
    if (hash === "SHA-1") throw new DOMException(`${name}: SHA-1 is not supported (SHA-256, SHA-384 and SHA-512 are)`, "NotSupportedError");
    const usage = type === "private" ? "sign" : "verify";
    checkUsages(type, name, usages, [usage]);
    if (type === "private" && usages.length === 0) throw new SyntaxError("crypto.subtle.importKey: a private key needs a usage (\"sign\")");
    const info = { name, modulusLength: bitLength(secret.n), publicExponent: secret.e.slice(), hash: { name: hash } };
    return makeKey(type, extractable, info, usages, secret);
  };

  // JWK (RFC 7517) members are base64url without padding.
  const base64url = (bytes) => {
    let out = "";
    for (let i = 0; i < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63];
      if (i + 1 < bytes.length) out += B64[(n >> 6) & 63];
      if (i + 2 < bytes.length) out += B64[n & 63];
    }
    return out.replaceAll("+", "-").replaceAll("/", "_");
  };
  const fromBase64url = (jwk, member) => {
    const text = jwk[member];
    const bad = () => new DOMException(`JWK: member "${member}" must be a base64url string`, "DataError");
    if (typeof text !== "string" || text.length % 4 === 1) throw bad();
    const out = new Uint8Array(Math.floor((text.length * 6) / 8));
    let bits = 0, value = 0, at = 0;
    for (const ch of text) {
      const digit = B64.indexOf(ch === "-" ? "+" : ch === "_" ? "/" : ch);
      if (digit < 0 || ch === "+" || ch === "/") throw bad();
      value = ((value << 6) | digit) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[at++] = (value >> bits) & 255;
      }
    }
    return out;
  };
  function importJwk(jwk, name, algorithm, extractable, usages) {
    if (typeof jwk !== "object" || jwk === null) throw new TypeError("crypto.subtle.importKey: a jwk key is a JSON Web Key object");
    if (isKdf(name)) throw new DOMException(`crypto.subtle.importKey: ${name} keys are imported raw`, "NotSupportedError");
    const dataError = (message) => new DOMException(`JWK: ${message}`, "DataError");
    if (jwk.ext === false && extractable) throw dataError("the key says it is not extractable (ext: false)");
    const expect = (member, value) => {
      if (jwk[member] !== value) throw dataError(`"${member}" must be ${JSON.stringify(value)} for ${name}, not ${JSON.stringify(jwk[member])}`);
    };
    if (jwk.use !== undefined && jwk.use !== (isAes(name) || agrees(name) ? "enc" : "sig")) throw dataError(`"use" is ${JSON.stringify(jwk.use)}`);
    const unlisted = Array.isArray(jwk.key_ops) ? usages.find((u) => !jwk.key_ops.includes(u)) : undefined;
    if (unlisted !== undefined) throw dataError(`"key_ops" does not allow ${JSON.stringify(unlisted)}`);
    const checkAlg = (key) => {
      if (jwk.alg !== undefined && jwk.alg !== jwkAlg(key)) {
        if (keyOf(key).type === "secret") {
          throw new DOMException(`Symmetric "jwk" key contains invalid "alg" value ${JSON.stringify(jwk.alg)}, expected ${JSON.stringify(jwkAlg(key))}.`, "DataError");
        }
        throw dataError(`"alg" is ${JSON.stringify(jwk.alg)} but the algorithm asks for ${jwkAlg(key)}`);
      }
      return key;
    };
    if (name === "HMAC" || isAes(name)) {
      expect("kty", "oct");
      return checkAlg(importSecret(name, fromBase64url(jwk, "k"), algorithm, extractable, usages));
    }
    if (isRsa(name)) {
      expect("kty", "RSA");
      if (jwk.oth !== undefined) throw new DOMException("JWK: RSA keys with more than two primes are not supported", "NotSupportedError");
      const n = fromBase64url(jwk, "n"), e = fromBase64url(jwk, "e");
      if (jwk.d === undefined) {
        native("rsa-public-check", n, e);
        return checkAlg(rsaKey("public", true, name, algorithm, usages, { n, e }));
      }
      const pkcs8 = native("pkcs8-from-jwk", "RSA", n, e, ...RSA_JWK_PRIVATE.map((m) => fromBase64url(jwk, m)));
      return checkAlg(rsaKey("private", extractable, name, algorithm, usages, { n, e, pkcs8 }));
    }
    let publicKey;
    if (isEc(name)) {
      expect("kty", "EC");
      expect("crv", "P-256");
      const x = fromBase64url(jwk, "x"), y = fromBase64url(jwk, "y");
      if (x.length !== 32 || y.length !== 32) throw dataError("P-256 coordinates are 32 bytes");
      publicKey = new Uint8Array(65);
      publicKey[0] = 4; publicKey.set(x, 1); publicKey.set(y, 33);
    } else {
      expect("kty", "OKP");
      expect("crv", name);
      publicKey = fromBase64url(jwk, "x");
      if (publicKey.length !== 32) throw dataError(`an ${name} public key is 32 bytes`);
    }
    if (jwk.d === undefined) {
      return makeKey("public", true, curveOf(name), checkPairUsages(name, "public", usages), publicKey);
    }
    // A private JWK carries its public key: ring checks that the two belong together.
    const pkcs8 = native("pkcs8-from-jwk", curveKind(name), fromBase64url(jwk, "d"), publicKey);
    return makeKey("private", extractable, curveOf(name), checkPairUsages(name, "private", usages), pkcs8);
  }
  const curveKind = (name) => (isEc(name) ? "P-256" : name);
  function importSecret(name, bytes, algorithm, extractable, usages) {
    if (name === "HMAC") {
      const hash = hashName(algorithm.hash);
      const allowed = usages.filter((u) => u === "sign" || u === "verify");
      if (allowed.length !== usages.length || usages.length === 0) {
        throw new SyntaxError("crypto.subtle.importKey: HMAC keys are for \"sign\" and \"verify\"");
      }
      return makeKey("secret", extractable, { name, hash: { name: hash }, length: bytes.length * 8 }, allowed, bytes);
    }
    if (name !== "AES-GCM") {
      aesLength(name, bytes.length * 8, "DataError", "Imported");
      checkAesUsages(name, usages);
    }
    return makeKey("secret", extractable, { name, length: bytes.length * 8 }, usages, bytes);
  }
  function exportJwk(key, secret) {
    const { type, algorithm: { name }, usages } = keyOf(key);
    const jwk = { key_ops: [...usages], ext: true };
    const alg = jwkAlg(key);
    if (alg !== undefined) jwk.alg = alg;
    if (type === "secret") {
      // In workerd's order (its JSON text is what wrapKey encrypts).
      const out = { kty: "oct", key_ops: jwk.key_ops };
      if (alg !== undefined) out.alg = alg;
      out.ext = true;
      out.k = base64url(secret);
      return out;
    }
    if (isRsa(name)) {
      const out = { kty: "RSA", n: base64url(secret.n), e: base64url(secret.e) };
      if (type === "private") {
        const parts = native("jwk-from-pkcs8", "RSA", secret.pkcs8);
        RSA_JWK_PRIVATE.forEach((member, i) => { out[member] = base64url(parts[i + 2]); });
      }
      return Object.assign(out, jwk);
    }
    const [d, point] = type === "private" ? native("jwk-from-pkcs8", curveKind(name), secret) : [null, secret];
    const out = isEc(name)
      ? { kty: "EC", crv: "P-256", x: base64url(point.subarray(1, 33)), y: base64url(point.subarray(33, 65)) }
      : { kty: "OKP", crv: name, x: base64url(point) };
    if (type === "private") out.d = base64url(d);
    return Object.assign(out, jwk);
  }
  // PBKDF2 and HKDF: `length` bits from a base key imported raw (never extractable); ECDH:
  // from a private key and the peer's public key (`algorithm.public`).
  const isKdf = (name) => name === "PBKDF2" || name === "HKDF";
  const kdfName = (algorithm) => {
    const name = algorithmName(algorithm);
    if (!isKdf(name) && !agrees(name)) throw new DOMException(`${name} does not derive keys or bits (PBKDF2, HKDF, ECDH and X25519 do)`, "NotSupportedError");
    return name;
  };
  // ECDH and X25519: the shared secret's first `length` bits (all 256 when length is null).
  const agreedBits = (name, algorithm, secret, length) => {
    const peer = algorithm.public;
    if (!(peer instanceof CryptoKey)) throw new TypeError(`${name}: algorithm.public must be the peer's public CryptoKey`);
    if (keyOf(peer).type !== "public") throw new DOMException(`The provided key has type "${keyOf(peer).type}", not "public"`, "InvalidAccessError");
    if (keyOf(peer).algorithm.name !== name) {
      throw new DOMException(name === "X25519"
        ? `Base X25519 private key cannot be used to derive a key from a peer ${keyOf(peer).algorithm.name} public key`
        : `Private key for derivation is using "ECDH" while public key is using "${keyOf(peer).algorithm.name}".`, "InvalidAccessError");
    }
    const shared = native(name === "X25519" ? "x25519" : "ecdh-p256", secret, secretOf(peer));
    if (length === null || length === undefined) return shared;
    // An unsigned long, as Web IDL converts it (-8 is 4294967288).
    const bits = Number(length) >>> 0;
    if (bits > 256) throw new DOMException(`Derived key length (${bits} bits) is too long (should be at most 256 bits).`, "OperationError");
    const out = shared.slice(0, Math.ceil(bits / 8));
    if (bits % 8 !== 0) out[out.length - 1] &= 0xff << (8 - (bits % 8));
    return out;
  };
  const deriveBytes = (name, algorithm, secret, length) => {
    if (agrees(name)) return agreedBits(name, algorithm, secret, length);
    const bits = Number(length);
    if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) {
      throw new DOMException(`${name}: length must be a positive multiple of 8 bits, not ${length}`, "OperationError");
    }
    const hash = hashName(algorithm.hash);
    const salt = bufferOf(algorithm.salt, `${name}: salt`);
    if (name === "HKDF") return native("hkdf", hash, secret, salt, bufferOf(algorithm.info, "HKDF: info"), bits / 8);
    const iterations = Number(algorithm.iterations);
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0xffffffff) {
      throw new DOMException(`PBKDF2: iterations must be a positive integer, not ${algorithm.iterations}`, "OperationError");
    }
    return native("pbkdf2", hash, secret, salt, iterations, bits / 8);
  };
  // RSA-PSS salts as long as the hash (what JWT's PS256/384/512 use; ring supports only that).
  const rsaHash = (name, algorithm, key) => {
    const hash = keyOf(key).algorithm.hash.name;
    const wanted = Number(hash.slice(4)) / 8;
    if (name === "RSA-PSS" && Number(algorithm.saltLength) !== wanted) {
      throw new DOMException(`RSA-PSS: saltLength must be ${wanted} (the ${hash} length) here, not ${algorithm.saltLength}`, "NotSupportedError");
    }
    return hash;
  };
  const subtle = {
    async deriveBits(algorithm, baseKey, length) {
      const name = kdfName(algorithm);
      return asArrayBuffer(deriveBytes(name, algorithm, checkKey(baseKey, name, "deriveBits"), length));
    },
    async deriveKey(algorithm, baseKey, derivedKeyAlgorithm, extractable, usages) {
      const name = kdfName(algorithm);
      const secret = checkKey(baseKey, name, "deriveKey");
      const target = algorithmName(derivedKeyAlgorithm);
      let length;
      if (isAes(target)) {
        length = aesLength(target, derivedKeyAlgorithm.length, "OperationError");
      } else if (target === "HMAC") {
        const hash = hashName(derivedKeyAlgorithm.hash);
        length = derivedKeyAlgorithm.length ?? (hash === "SHA-384" || hash === "SHA-512" ? 1024 : 512);
      } else {
        throw new DOMException(`crypto.subtle.deriveKey: derives AES and HMAC keys, not ${target}`, "NotSupportedError");
      }
      return importSecret(target, deriveBytes(name, algorithm, secret, length), derivedKeyAlgorithm, extractable, [...usages]);
    },
    async digest(algorithm, data) {
      // MD5 too (as on workerd), for digests only: never in a signature or a derivation.
      const name = String(typeof algorithm === "string" ? algorithm : algorithm?.name).toUpperCase();
      return asArrayBuffer(ops.digest(name === "MD5" ? name : hashName(algorithm), bufferOf(data, "crypto.subtle.digest")));
    },
    async generateKey(algorithm, extractable, usages) {
      const name = algorithmName(algorithm);
      if (isRsa(name)) {
        throw new DOMException(`crypto.subtle.generateKey: ${name} keys cannot be generated here; import one (spki, pkcs8 or jwk)`, "NotSupportedError");
      }
      if (isKdf(name)) throw new DOMException(`crypto.subtle.generateKey: ${name} keys are imported raw (from a password or a secret)`, "NotSupportedError");
      if (isAes(name)) {
        const length = aesLength(name, algorithm.length ?? 256, "OperationError");
        if (name !== "AES-GCM") checkAesUsages(name, [...usages]);
        return makeKey("secret", extractable, { name, length }, [...usages], ops.randomBytes(length / 8));
      }
      if (name === "HMAC") {
        const hash = hashName(algorithm.hash);
        let size = hash === "SHA-512" || hash === "SHA-384" ? 128 : 64;
        if (algorithm.length !== undefined) {
          const bits = Number(algorithm.length);
          if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > 65536) {
            throw new DOMException(`crypto.subtle.generateKey: an HMAC key length must be a multiple of 8 bits from 8 to 65536, not ${String(algorithm.length)}`, "OperationError");
          }
          size = bits / 8;
        }
        const bytes = ops.randomBytes(size);
        return makeKey("secret", extractable, { name, hash: { name: hash }, length: bytes.length * 8 }, [...usages], bytes);
      }
      const [pkcs8, publicRaw] = native({ Ed25519: "ed25519-generate", X25519: "x25519-generate" }[name] ?? "p256-generate");
      if (agrees(name)) checkPairUsages(name, "private", [...usages]);
      return {
        privateKey: makeKey("private", extractable, curveOf(name), [...usages].filter((u) => pairUsages(name, "private").includes(u)), pkcs8),
        publicKey: makeKey("public", true, curveOf(name), [...usages].filter((u) => pairUsages(name, "public").includes(u)), publicRaw),
      };
    },
    async importKey(format, keyData, algorithm, extractable, usages) {
      const name = algorithmName(algorithm);
      usages = [...usages];
      if (format === "jwk") return importJwk(keyData, name, algorithm, Boolean(extractable), usages);
      const bytes = bufferOf(keyData, "crypto.subtle.importKey").slice();
      if (isKdf(name)) {
        if (format !== "raw") throw new DOMException(`crypto.subtle.importKey: ${name} keys are imported raw`, "NotSupportedError");
        if (extractable) throw new SyntaxError(`crypto.subtle.importKey: ${name} keys cannot be extractable`);
        return makeKey("secret", false, { name }, checkUsages("secret", name, usages, ["deriveBits", "deriveKey"]), bytes);
      }
      if (name === "HMAC" || isAes(name)) {
        if (format !== "raw") throw new DOMException(`crypto.subtle.importKey: format ${JSON.stringify(format)} is not supported for ${name} (raw and jwk are)`, "NotSupportedError");
        return importSecret(name, bytes, algorithm, extractable, usages);
      }
      if (format === "spki") {
        const [kind, ...parts] = native("spki-decode", bytes);
        const wanted = isRsa(name) ? "RSA" : curveKind(name);
        if (kind !== wanted) throw new DOMException(`crypto.subtle.importKey: the spki key is ${kind}, not a ${name} key`, "DataError");
        if (kind === "RSA") return rsaKey("public", true, name, algorithm, usages, { n: parts[0], e: parts[1] });
        return makeKey("public", true, curveOf(name), checkPairUsages(name, "public", usages), parts[0]);
      }
      if (isRsa(name)) {
        if (format !== "pkcs8") throw new DOMException(`crypto.subtle.importKey: format ${JSON.stringify(format)} is not supported for ${name} (spki, pkcs8 and jwk are)`, "NotSupportedError");
        const [n, e] = native("rsa-private-public", bytes);
        return rsaKey("private", extractable, name, algorithm, usages, { n, e, pkcs8: bytes });
      }
      if (format === "raw") {
        if (name === "X25519" && bytes.length !== 32) {
          throw new DOMException(`X25519 raw keys must be exactly 32-bytes (provided ${bytes.length}).`, "DataError");
        }
        if (agrees(name)) checkPairUsages(name, "public", usages);
        return makeKey("public", true, curveOf(name), [...usages], bytes);
      }
      if (format === "pkcs8") {
        native("private-check", curveKind(name), bytes);
        if (agrees(name)) checkPairUsages(name, "private", usages);
        return makeKey("private", extractable, curveOf(name), [...usages], bytes);
      }
      throw new DOMException(`crypto.subtle.importKey: format ${JSON.stringify(format)} is not supported for ${name} (raw, spki or jwk for public keys, pkcs8 for private keys)`, "NotSupportedError");
    },
    async exportKey(format, key) {
      if (!(key instanceof CryptoKey)) throw new TypeError("crypto.subtle.exportKey: expected a CryptoKey");
      const { type, extractable, algorithm: { name }, secret } = keyOf(key);
      if (!extractable) throw new DOMException("the key is not extractable", "InvalidAccessError");
      if (format === "jwk") return exportJwk(key, secret);
      if (format === "spki") {
        if (type !== "public") throw new DOMException("only public keys export as spki", "InvalidAccessError");
        const parts = isRsa(name) ? ["RSA", secret.n, secret.e] : [curveKind(name), secret];
        return asArrayBuffer(native("spki-encode", ...parts));
      }
      if (isRsa(name)) {
        if (format === "pkcs8" && type === "private") return asArrayBuffer(secret.pkcs8);
        throw new DOMException(`this ${name} key exports as ${type === "public" ? "spki or jwk" : "pkcs8 or jwk"}`, "NotSupportedError");
      }
      const wanted = type === "private" ? "pkcs8 or jwk" : type === "public" ? "raw, spki or jwk" : "raw or jwk";
      if (format !== (type === "private" ? "pkcs8" : "raw")) {
        throw new DOMException(`this key exports as ${wanted}`, "NotSupportedError");
      }
      return asArrayBuffer(secret);
    },
    async sign(algorithm, key, data) {
      const name = algorithmName(algorithm);
      const bytes = bufferOf(data, "crypto.subtle.sign");
      if (name === "HMAC") {
        const secret = hmacKey(key, "sign");
        return asArrayBuffer(ops.hmac(keyOf(key).algorithm.hash.name, secret, bytes));
      }
      if (name === "ECDSA" && hashName(algorithm.hash ?? "SHA-256") !== "SHA-256") {
        throw new DOMException("ECDSA P-256 signs with SHA-256 only", "NotSupportedError");
      }
      const secret = checkKey(key, name, "sign");
      if (isRsa(name)) {
        const hash = rsaHash(name, algorithm, key);
        return asArrayBuffer(native("rsa-sign", rsaScheme(name), hash, bytes, secret.pkcs8));
      }
      return asArrayBuffer(native(name === "Ed25519" ? "ed25519-sign" : "p256-sign", secret, bytes));
    },
    async verify(algorithm, key, signature, data) {
      const name = algorithmName(algorithm);
      const given = bufferOf(signature, "crypto.subtle.verify");
      const bytes = bufferOf(data, "crypto.subtle.verify");
      if (name === "HMAC") {
        const secret = hmacKey(key, "verify");
        const expected = ops.hmac(keyOf(key).algorithm.hash.name, secret, bytes);
        if (given.length !== expected.length) return false;
        let diff = 0;
        for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ given[i];
        return diff === 0;
      }
      const publicKey = checkKey(key, name, "verify");
      if (isRsa(name)) {
        const hash = rsaHash(name, algorithm, key);
        return native("rsa-verify", rsaScheme(name), hash, publicKey.n, publicKey.e, given, bytes);
      }
      return native("verify", name === "Ed25519" ? "Ed25519" : "P-256", publicKey, given, bytes);
    },
    async encrypt(algorithm, key, data) {
      return aesCipher(true, algorithm, aesSecret("encrypt", algorithm, key), data);
    },
    async decrypt(algorithm, key, data) {
      return aesCipher(false, algorithm, aesSecret("decrypt", algorithm, key), data);
    },
    // Wrapping is exporting, then encrypting (AES-KW, or an AES cipher) with a key whose usages
    // include wrapKey; unwrapping is decrypting, then importing. A JWK is wrapped as its JSON
    // text.
    async wrapKey(format, key, wrappingKey, wrapAlgorithm) {
      const secret = aesSecret("wrapKey", wrapAlgorithm, wrappingKey);
      const exported = await subtle.exportKey(format, key);
      const bytes = format === "jwk" ? utf8(JSON.stringify(exported)) : new Uint8Array(exported);
      return aesCipher(true, wrapAlgorithm, secret, bytes);
    },
    async unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
      const bytes = new Uint8Array(aesCipher(false, unwrapAlgorithm, aesSecret("unwrapKey", unwrapAlgorithm, unwrappingKey), wrappedKey));
      let keyData = bytes;
      if (format === "jwk") {
        try {
          keyData = JSON.parse(fromUtf8(bytes));
        } catch {
          throw new DOMException("crypto.subtle.unwrapKey: the unwrapped key is not a JWK", "DataError");
        }
      }
      return subtle.importKey(format, keyData, unwrappedKeyAlgorithm, extractable, keyUsages);
    },
  };
  // The AES key's secret, if the key is one of the algorithm asked for and allows `usage`
  // (encrypt, decrypt, wrapKey or unwrapKey); then that cipher one way or the other.
  function aesSecret(usage, algorithm, key) {
    const name = algorithmName(algorithm);
    if (key instanceof CryptoKey && keyOf(key).algorithm.name !== name) {
      throw new DOMException(`Requested algorithm "${name}" does not match this CryptoKey's algorithm "${keyOf(key).algorithm.name}".`, "InvalidAccessError");
    }
    if (!isAes(name)) throw new DOMException(`${name} cannot ${usage}`, "NotSupportedError");
    return checkKey(key, name, usage);
  }
  function aesCipher(encrypt, algorithm, secret, data) {
    const name = algorithmName(algorithm);
    if (name === "AES-GCM") return aesGcm(encrypt, algorithm, secret, data);
    const bytes = bufferOf(data, encrypt ? "crypto.subtle.encrypt" : "crypto.subtle.decrypt");
    if (name === "AES-CBC") return asArrayBuffer(native(encrypt ? "aes-cbc-encrypt" : "aes-cbc-decrypt", secret, bufferOf(algorithm.iv, "iv"), bytes));
    if (name === "AES-CTR") return asArrayBuffer(native("aes-ctr", secret, bufferOf(algorithm.counter, "counter"), Number(algorithm.length), bytes));
    return asArrayBuffer(native(encrypt ? "aes-kw-wrap" : "aes-kw-unwrap", secret, bytes));
  }
  function aesGcm(encrypt, algorithm, secret, data) {
    if ((algorithm.tagLength ?? 128) !== 128) throw new DOMException("AES-GCM: only 128-bit tags are supported", "NotSupportedError");
    const aad = algorithm.additionalData === undefined ? new Uint8Array(0) : bufferOf(algorithm.additionalData, "additionalData");
    const what = encrypt ? "crypto.subtle.encrypt" : "crypto.subtle.decrypt";
    return asArrayBuffer(native(encrypt ? "aes-encrypt" : "aes-decrypt", secret, bufferOf(algorithm.iv, "iv"), aad, bufferOf(data, what)));
  }
  // SubtleCrypto is a class, as on Workers; its one instance is crypto.subtle.
  class SubtleCrypto {
    constructor(key) { if (key !== kState) throw new TypeError("Illegal constructor"); }
  }
  methods(SubtleCrypto.prototype, subtle);
  // workerd's extension: compares two buffers of the same length in time that does not depend
  // on where they differ (for MACs and tokens). Its `length` is 0 there too.
  Object.defineProperty(SubtleCrypto.prototype, "timingSafeEqual", {
    value: function timingSafeEqual(a = undefined, b = undefined) {
      const x = toBytes(a, "crypto.subtle.timingSafeEqual: parameter 1");
      const y = toBytes(b, "crypto.subtle.timingSafeEqual: parameter 2");
      if (x.length !== y.length) throw new TypeError("Input buffers must have the same byte length.");
      let difference = 0;
      for (let i = 0; i < x.length; i++) difference |= x[i] ^ y[i];
      return difference === 0;
    },
    writable: true,
    configurable: true,
  });
  tagClasses(SubtleCrypto, CryptoKey);
  return { subtle: Object.freeze(new SubtleCrypto(kState)), SubtleCrypto, CryptoKey };
})
