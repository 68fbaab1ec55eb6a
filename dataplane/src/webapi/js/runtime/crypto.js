// Crypto.getRandomValues, randomUUID, and the crypto.subtle accessor (js/subtle.js).
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- crypto ------------------------------------------------------------------------------------
  const methods = (target, source) => {
    for (const [name, value] of Object.entries(source)) {
      Object.defineProperty(target, name, { value, writable: true, configurable: true, enumerable: true });
    }
  };
  let webCrypto;
  const subtleTier = () => (webCrypto ??= ops.lazyScript("subtle")(ops, { kState, toBytes, B64, methods, tagClasses, utf8, fromUtf8 }));
  // crypto and Crypto are made in a context the first time it reads one of them; until then a
  // reset-on request does not deserialise them. An app whose source names one gets them in its
  // snapshot (lazyGlobal).
  let cryptoApi = null;
  const cryptoGlobals = () => (cryptoApi ??= makeCrypto());
  lazyGlobal(["Crypto"], cryptoGlobals);
  lazyGlobal(["crypto"], cryptoGlobals, { on: OWN });
  function makeCrypto() {
    const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
    const crypto = {
      getRandomValues(array) {
        if (!INTEGER_ARRAYS.some((C) => array instanceof C)) {
          throw new (domException())("crypto.getRandomValues: expected an integer TypedArray", "TypeMismatchError");
        }
        if (array.byteLength > 65536) {
          throw new (domException())(`crypto.getRandomValues: ${array.byteLength} bytes asked, at most 65536 allowed`, "QuotaExceededError");
        }
        new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(ops.randomBytes(array.byteLength));
        return array;
      },
      randomUUID() {
        const b = ops.randomBytes(16);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
        return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      },
    };
    // Crypto and SubtleCrypto are classes, as on Workers; the one instance of each is crypto and
    // crypto.subtle. Web Crypto (js/subtle.js) is compiled on first use.
    class Crypto {
      constructor(key) { if (key !== kState) throw new TypeError("Illegal constructor"); }
    }
    methods(Crypto.prototype, crypto);
    Object.defineProperty(Crypto.prototype, "subtle", {
      get: Object.getOwnPropertyDescriptor({ get subtle() { return subtleTier().subtle; } }, "subtle").get,
      configurable: true,
      enumerable: true,
    });
    // workerd's crypto.DigestStream: a WritableStream that hashes what is written to it
    // (natively, a slice at a time, so the CPU limit can step in between); `digest` resolves
    // to the hash once the stream closes. Made the first time it is read: it needs the streams.
    let digestStream = null;
    Object.defineProperty(Crypto.prototype, "DigestStream", {
      get: Object.getOwnPropertyDescriptor({ get DigestStream() { return (digestStream ??= makeDigestStream()); } }, "DigestStream").get,
      configurable: true,
      enumerable: true,
    });
    tagClasses(Crypto);
    return { Crypto, crypto: Object.freeze(new Crypto(kState)) };
  }
  function makeDigestStream() {
    const HASHES = ["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];
    class DigestStream extends streamsApi().WritableStream {
      #digest;
      #written;
      constructor(algorithm = undefined) {
        const name = String(typeof algorithm === "string" ? algorithm : algorithm?.name).toUpperCase();
        if (!HASHES.includes(name)) {
          throw new (domException())("Unrecognized or unimplemented digest algorithm requested.", "NotSupportedError");
        }
        const id = ops.codecOpen("digest", name);
        let resolve, reject;
        const digest = new Promise((res, rej) => { resolve = res; reject = rej; });
        // Nobody may ever read it: an aborted stream's rejection is not an unhandled one.
        digest.catch(() => {});
        let written = 0n;
        const fail = (err) => {
          ops.codecClose(id);
          reject(err);
          throw err;
        };
        super({
          write(chunk) {
            let bytes;
            try {
              bytes = typeof chunk === "string" ? utf8(chunk) : toBytes(chunk, "DigestStream.write");
            } catch (err) {
              fail(err);
            }
            feedCodec(id, "digest", bytes);
            written += BigInt(bytes.length);
          },
          close() {
            const hash = ops.compressFinish(id);
            resolve(hash.buffer.slice(hash.byteOffset, hash.byteOffset + hash.byteLength));
          },
          abort(reason) {
            ops.codecClose(id);
            reject(reason);
          },
        });
        this.#digest = digest;
        this.#written = () => written;
      }
      get digest() { return this.#digest; }
      get bytesWritten() { return this.#written(); }
    }
    tagClasses(DigestStream);
    return DigestStream;
  }
  lazyGlobal(["SubtleCrypto", "CryptoKey"], subtleTier);
  // An app whose source names it gets it in its snapshot (see lazyGlobals).
  lazyGlobals.push("crypto.subtle");

