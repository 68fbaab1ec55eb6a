// NANO Node layer, tier "rest": process and every node: module but buffer (events, util,
// assert, path, string_decoder, crypto, async_hooks, url, module, stream, zlib, querystring,
// diagnostics_channel...), on top of the buffer and inspect tiers. Compiled into a context on
// first use by the lazyScript op (see runtime/node.js, "Node compatibility"); the script's value is the
// function that builds the tier.
//
// Reference answers: workerd (npm `workerd`, compatibility date 2026-11-01, nodejs_compat); the
// conformance test tests/e2e/compat.rs records them.
(function restTier(ops, core, inspection, helpers) {
  "use strict";
  const { nodeError, rangeError, typeError, bytesOf, encodeString, decodeBytes, encodingOf, fromBytes, Buffer, bufferModule } = core;
  const { inspect, format } = inspection;
  const { feedCodec } = helpers;

  // ---- deep strict equality (assert, util.isDeepStrictEqual) -----------------------------------
  function deepEqual(a, b, memo = new Map()) {
    if (Object.is(a, b)) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    const tag = Object.prototype.toString.call(a);
    if (tag !== Object.prototype.toString.call(b)) return false;
    if (memo.get(a) === b) return true;
    memo.set(a, b);
    if (a instanceof Date) return a.getTime() === b.getTime();
    if (a instanceof RegExp) return String(a) === String(b);
    if (ArrayBuffer.isView(a)) {
      if (a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
    }
    if (a instanceof Map) {
      if (a.size !== b.size) return false;
      for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k), memo)) return false;
      return true;
    }
    if (a instanceof Set) {
      if (a.size !== b.size) return false;
      for (const v of a) if (!b.has(v) && ![...b].some((w) => deepEqual(v, w, memo))) return false;
      return true;
    }
    if (a instanceof Error && (a.message !== b.message || a.name !== b.name)) return false;
    const ka = Object.keys(a), kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || !deepEqual(a[k], b[k], memo)) return false;
    return true;
  }

  // ---- util ------------------------------------------------------------------------------------
  const kCustomPromisify = Symbol.for("nodejs.util.promisify.custom");
  function promisify(original) {
    if (typeof original !== "function") throw typeError("ERR_INVALID_ARG_TYPE", 'The "original" argument must be of type function');
    if (original[kCustomPromisify]) return original[kCustomPromisify];
    function promisified(...args) {
      return new Promise((resolve, reject) => {
        Reflect.apply(original, this, [...args, (err, ...values) => (err ? reject(err) : resolve(values[0]))]);
      });
    }
    Object.setPrototypeOf(promisified, Object.getPrototypeOf(original));
    return Object.defineProperties(promisified, Object.getOwnPropertyDescriptors(original));
  }
  promisify.custom = kCustomPromisify;
  function callbackify(original) {
    return function (...args) {
      const callback = args.pop();
      Reflect.apply(original, this, args).then((value) => queueMicrotask(() => callback(null, value)), (err) => queueMicrotask(() => callback(err)));
    };
  }
  const tagOf = (v) => Object.prototype.toString.call(v).slice(8, -1);
  const AsyncFunction = (async () => {}).constructor;
  const GeneratorFunction = function* () {}.constructor;
  const AsyncGeneratorFunction = async function* () {}.constructor;
  const TypedArray = Object.getPrototypeOf(Uint8Array);
  const typedTag = (name) => (v) => ArrayBuffer.isView(v) && v[Symbol.toStringTag] === name;
  const types = {
    isPromise: (v) => v instanceof Promise, isDate: (v) => v instanceof Date, isRegExp: (v) => v instanceof RegExp,
    isMap: (v) => v instanceof Map, isSet: (v) => v instanceof Set, isWeakMap: (v) => v instanceof WeakMap, isWeakSet: (v) => v instanceof WeakSet,
    isArrayBuffer: (v) => v instanceof ArrayBuffer, isSharedArrayBuffer: (v) => v instanceof SharedArrayBuffer,
    isAnyArrayBuffer: (v) => v instanceof ArrayBuffer || v instanceof SharedArrayBuffer,
    isArrayBufferView: (v) => ArrayBuffer.isView(v), isDataView: (v) => v instanceof DataView,
    isTypedArray: (v) => v instanceof TypedArray,
    isUint8Array: typedTag("Uint8Array"), isUint8ClampedArray: typedTag("Uint8ClampedArray"), isUint16Array: typedTag("Uint16Array"),
    isUint32Array: typedTag("Uint32Array"), isInt8Array: typedTag("Int8Array"), isInt16Array: typedTag("Int16Array"),
    isInt32Array: typedTag("Int32Array"), isFloat32Array: typedTag("Float32Array"), isFloat64Array: typedTag("Float64Array"),
    isBigInt64Array: typedTag("BigInt64Array"), isBigUint64Array: typedTag("BigUint64Array"),
    isAsyncFunction: (v) => v instanceof AsyncFunction || v instanceof AsyncGeneratorFunction,
    isGeneratorFunction: (v) => v instanceof GeneratorFunction || v instanceof AsyncGeneratorFunction,
    isGeneratorObject: (v) => tagOf(v) === "Generator", isNativeError: (v) => v instanceof Error,
    isBoxedPrimitive: (v) => v instanceof Number || v instanceof String || v instanceof Boolean || v instanceof BigInt || v instanceof Symbol,
    isNumberObject: (v) => v instanceof Number, isStringObject: (v) => v instanceof String, isBooleanObject: (v) => v instanceof Boolean,
    isSymbolObject: (v) => typeof v === "object" && tagOf(v) === "Symbol", isBigIntObject: (v) => typeof v === "object" && tagOf(v) === "BigInt",
    isMapIterator: (v) => tagOf(v) === "Map Iterator", isSetIterator: (v) => tagOf(v) === "Set Iterator",
    isProxy: () => false, isExternal: () => false, isModuleNamespaceObject: (v) => tagOf(v) === "Module",
    isArgumentsObject: (v) => tagOf(v) === "Arguments", isKeyObject: () => false, isCryptoKey: (v) => v instanceof CryptoKey,
  };
  const util = {
    format, formatWithOptions: (options, ...args) => format(...args), inspect, promisify, callbackify, types,
    isDeepStrictEqual: (a, b) => deepEqual(a, b),
    inherits(ctor, superCtor) {
      Object.defineProperty(ctor, "super_", { value: superCtor, writable: true, configurable: true });
      Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
    },
    deprecate(fn, message) {
      let warned = false;
      return function (...args) {
        if (!warned) { warned = true; console.warn(`DeprecationWarning: ${message}`); }
        return Reflect.apply(fn, this, args);
      };
    },
    debuglog: () => Object.assign(() => {}, { enabled: false }),
    isArray: Array.isArray,
    TextEncoder: globalThis.TextEncoder, TextDecoder: globalThis.TextDecoder,
    toUSVString: (s) => String(s).toWellFormed(),
    stripVTControlCharacters: (s) => String(s).replace(/\u001b\[[0-9;]*[A-Za-z]/g, ""),
    aborted: (signal) => new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true }))),
  };

  // ---- events ----------------------------------------------------------------------------------
  const kCapture = Symbol("kCapture");
  function EventEmitter(options) { EventEmitter.init.call(this, options); }
  EventEmitter.prototype._events = undefined;
  EventEmitter.prototype._eventsCount = 0;
  EventEmitter.prototype._maxListeners = undefined;
  EventEmitter.defaultMaxListeners = 10;
  EventEmitter.errorMonitor = Symbol("events.errorMonitor");
  EventEmitter.captureRejectionSymbol = Symbol.for("nodejs.rejection");
  EventEmitter.init = function (options) {
    if (this._events === undefined || this._events === Object.getPrototypeOf(this)._events) {
      this._events = Object.create(null);
      this._eventsCount = 0;
    }
    this._maxListeners = this._maxListeners || undefined;
    this[kCapture] = Boolean(options?.captureRejections);
  };
  const checkListener = (listener) => {
    if (typeof listener !== "function") throw typeError("ERR_INVALID_ARG_TYPE", `The "listener" argument must be of type function. Received ${listener === null ? "null" : typeof listener}`);
  };
  function addListener(target, type, listener, prepend) {
    checkListener(listener);
    let events = target._events;
    if (events === undefined) { events = target._events = Object.create(null); target._eventsCount = 0; }
    else if (events.newListener !== undefined) {
      target.emit("newListener", type, listener.listener ?? listener);
      events = target._events;
    }
    const existing = events[type];
    if (existing === undefined) { events[type] = listener; target._eventsCount++; }
    else if (typeof existing === "function") events[type] = prepend ? [listener, existing] : [existing, listener];
    else if (prepend) existing.unshift(listener);
    else existing.push(listener);
    return target;
  }
  function onceWrapper(...args) {
    if (!this.fired) {
      this.target.removeListener(this.type, this.wrapFn);
      this.fired = true;
      return Reflect.apply(this.listener, this.target, args);
    }
  }
  function onceWrap(target, type, listener) {
    const state = { fired: false, wrapFn: undefined, target, type, listener };
    const wrapped = onceWrapper.bind(state);
    wrapped.listener = listener;
    state.wrapFn = wrapped;
    return wrapped;
  }
  Object.assign(EventEmitter.prototype, {
    setMaxListeners(n) { this._maxListeners = n; return this; },
    getMaxListeners() { return this._maxListeners ?? EventEmitter.defaultMaxListeners; },
    emit(type, ...args) {
      const events = this._events;
      if (type === "error" && events?.[EventEmitter.errorMonitor] !== undefined) this.emit(EventEmitter.errorMonitor, ...args);
      const handler = events?.[type];
      if (handler === undefined) {
        if (type === "error") {
          const er = args[0];
          if (er instanceof Error) throw er;
          throw nodeError(Error, "ERR_UNHANDLED_ERROR", `Unhandled error. (${inspect(er)})`);
        }
        return false;
      }
      const listeners = typeof handler === "function" ? [handler] : handler.slice();
      for (const listener of listeners) {
        const result = Reflect.apply(listener, this, args);
        if (this[kCapture] && result instanceof Promise) {
          result.catch((err) => queueMicrotask(() => {
            if (typeof this[EventEmitter.captureRejectionSymbol] === "function") this[EventEmitter.captureRejectionSymbol](err, type, ...args);
            else this.emit("error", err);
          }));
        }
      }
      return true;
    },
    addListener(type, listener) { return addListener(this, type, listener, false); },
    prependListener(type, listener) { return addListener(this, type, listener, true); },
    once(type, listener) { checkListener(listener); return this.on(type, onceWrap(this, type, listener)); },
    prependOnceListener(type, listener) { checkListener(listener); return this.prependListener(type, onceWrap(this, type, listener)); },
    removeListener(type, listener) {
      checkListener(listener);
      const events = this._events;
      const list = events?.[type];
      if (list === undefined) return this;
      if (list === listener || list.listener === listener) {
        if (--this._eventsCount === 0) this._events = Object.create(null);
        else delete events[type];
        if (events.removeListener) this.emit("removeListener", type, list.listener ?? listener);
      } else if (typeof list !== "function") {
        const i = list.findLastIndex((l) => l === listener || l.listener === listener);
        if (i < 0) return this;
        list.splice(i, 1);
        if (list.length === 1) events[type] = list[0];
        if (events.removeListener !== undefined) this.emit("removeListener", type, listener);
      }
      return this;
    },
    removeAllListeners(type) {
      if (this._events === undefined) return this;
      if (arguments.length === 0) { this._events = Object.create(null); this._eventsCount = 0; }
      else if (this._events[type] !== undefined) {
        if (--this._eventsCount === 0) this._events = Object.create(null);
        else delete this._events[type];
      }
      return this;
    },
    listeners(type) { return this.rawListeners(type).map((l) => l.listener ?? l); },
    rawListeners(type) {
      const list = this._events?.[type];
      return list === undefined ? [] : typeof list === "function" ? [list] : list.slice();
    },
    listenerCount(type, listener) {
      const list = this.rawListeners(type);
      return listener === undefined ? list.length : list.filter((l) => l === listener || l.listener === listener).length;
    },
    eventNames() { return this._eventsCount > 0 ? Reflect.ownKeys(this._events) : []; },
  });
  EventEmitter.prototype.on = EventEmitter.prototype.addListener;
  EventEmitter.prototype.off = EventEmitter.prototype.removeListener;
  EventEmitter.EventEmitter = EventEmitter;
  EventEmitter.usingDomains = false;
  EventEmitter.listenerCount = (emitter, type) => emitter.listenerCount(type);
  EventEmitter.once = function once(emitter, name, options = {}) {
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted) return reject(signal.reason);
      const onError = (err) => { emitter.removeListener(name, resolver); reject(err); };
      const resolver = (...args) => { if (name !== "error") emitter.removeListener("error", onError); resolve(args); };
      if (typeof emitter.addEventListener === "function" && !(emitter instanceof EventEmitter)) {
        emitter.addEventListener(name, (...args) => resolve(args), { once: true });
        return;
      }
      emitter.once(name, resolver);
      if (name !== "error") emitter.once("error", onError);
      signal?.addEventListener("abort", () => { emitter.removeListener(name, resolver); reject(signal.reason); }, { once: true });
    });
  };
  EventEmitter.on = function on(emitter, name) {
    const queue = [], waiting = [];
    emitter.on(name, (...args) => (waiting.length ? waiting.shift().resolve({ value: args, done: false }) : queue.push(args)));
    return {
      next: () => (queue.length ? Promise.resolve({ value: queue.shift(), done: false }) : new Promise((resolve, reject) => waiting.push({ resolve, reject }))),
      return: () => Promise.resolve({ value: undefined, done: true }),
      [Symbol.asyncIterator]() { return this; },
    };
  };
  EventEmitter.getEventListeners = (emitter, name) => (typeof emitter.listeners === "function" ? emitter.listeners(name) : []);
  EventEmitter.setMaxListeners = (n = EventEmitter.defaultMaxListeners, ...targets) => {
    if (targets.length === 0) EventEmitter.defaultMaxListeners = n;
    for (const t of targets) t.setMaxListeners?.(n);
  };
  EventEmitter.default = EventEmitter;

  // ---- assert ----------------------------------------------------------------------------------
  class AssertionError extends Error {
    constructor(options = {}) {
      const { message, actual, expected, operator } = options;
      super(message ?? `${inspect(actual)} ${operator} ${inspect(expected)}`);
      this.generatedMessage = message === undefined;
      this.code = "ERR_ASSERTION";
      this.actual = actual;
      this.expected = expected;
      this.operator = operator;
    }
    get name() { return "AssertionError"; }
  }
  const OPERATOR_TEXT = {
    strictEqual: "Expected values to be strictly equal:", deepStrictEqual: "Expected values to be strictly deep-equal:",
    deepEqual: "Expected values to be loosely deep-equal:", equal: "Expected values to be loosely equal:",
    notStrictEqual: 'Expected "actual" to be strictly unequal to:', notDeepStrictEqual: 'Expected "actual" not to be strictly deep-equal to:',
    notEqual: 'Expected "actual" to be loosely unequal to:', notDeepEqual: 'Expected "actual" not to be loosely deep-equal to:',
  };
  function fail(actual, expected, message, operator) {
    if (message instanceof Error) throw message;
    const text = message ?? `${OPERATOR_TEXT[operator] ?? operator}\n\n${inspect(actual)} !== ${inspect(expected)}\n`;
    const err = new AssertionError({ message: text, actual, expected, operator });
    err.generatedMessage = message === undefined;
    throw err;
  }
  function errorMatches(err, expected) {
    if (expected === undefined) return true;
    if (typeof expected === "function") {
      if (expected.prototype !== undefined && err instanceof expected) return true;
      if (Error.isPrototypeOf(expected) || expected === Error) return false;
      return expected.call({}, err) === true;
    }
    if (expected instanceof RegExp) return expected.test(String(err));
    if (typeof expected === "object") return Object.keys(expected).every((k) => (expected[k] instanceof RegExp ? expected[k].test(err[k]) : deepEqual(err[k], expected[k])));
    return true;
  }
  // workerd's node:assert compares strictly in its legacy methods too (equal(1, "1") fails), so
  // the legacy names are the strict ones here.
  function makeAssert() {
    function ok(value, message) {
      if (!value) fail(value, true, message ?? (arguments.length === 0 ? "No value argument passed to `assert.ok()`" : "The expression evaluated to a falsy value:\n\n  assert.ok(" + inspect(value) + ")\n"), "==");
    }
    const assert = function assert(...args) { return ok(...args); };
    Object.assign(assert, {
      ok, AssertionError, fail: (message = "Failed") => { if (message instanceof Error) throw message; throw new AssertionError({ message, operator: "fail" }); },
      strictEqual: (a, b, m) => { if (!Object.is(a, b)) fail(a, b, m, "strictEqual"); },
      notStrictEqual: (a, b, m) => { if (Object.is(a, b)) fail(a, b, m, "notStrictEqual"); },
      deepStrictEqual: (a, b, m) => { if (!deepEqual(a, b)) fail(a, b, m, "deepStrictEqual"); },
      notDeepStrictEqual: (a, b, m) => { if (deepEqual(a, b)) fail(a, b, m, "notDeepStrictEqual"); },
      throws(fn, expected, message) {
        if (typeof expected === "string") { message = expected; expected = undefined; }
        try { fn(); } catch (err) {
          if (!errorMatches(err, expected)) throw err;
          return;
        }
        fail(undefined, expected, message ?? "Missing expected exception.", "throws");
      },
      doesNotThrow(fn, expected, message) {
        try { fn(); } catch (err) { fail(err, expected, typeof message === "string" ? message : `Got unwanted exception.\nActual message: "${err?.message}"`, "doesNotThrow"); }
      },
      async rejects(promiseOrFn, expected, message) {
        if (typeof expected === "string") { message = expected; expected = undefined; }
        try { await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn); } catch (err) {
          if (!errorMatches(err, expected)) throw err;
          return;
        }
        fail(undefined, expected, message ?? "Missing expected rejection.", "rejects");
      },
      async doesNotReject(promiseOrFn, expected, message) {
        try { await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn); } catch (err) { fail(err, expected, typeof message === "string" ? message : "Got unwanted rejection.", "doesNotReject"); }
      },
      match(string, regexp, message) { if (!regexp.test(string)) fail(string, regexp, message ?? `The input did not match the regular expression ${regexp}. Input:\n\n${inspect(string)}\n`, "match"); },
      doesNotMatch(string, regexp, message) { if (regexp.test(string)) fail(string, regexp, message ?? `The input was expected to not match the regular expression ${regexp}. Input:\n\n${inspect(string)}\n`, "doesNotMatch"); },
      ifError(value) { if (value !== null && value !== undefined) throw value instanceof Error ? value : new AssertionError({ message: `ifError got unwanted exception: ${inspect(value)}`, actual: value, operator: "ifError" }); },
    });
    return assert;
  }
  const assert = makeAssert();
  assert.equal = assert.strictEqual;
  assert.notEqual = assert.notStrictEqual;
  assert.deepEqual = assert.deepStrictEqual;
  assert.notDeepEqual = assert.notDeepStrictEqual;
  assert.strict = assert;

  // ---- path (POSIX) ----------------------------------------------------------------------------
  const checkPath = (p, what = "path") => {
    if (typeof p !== "string") throw typeError("ERR_INVALID_ARG_TYPE", `The "${what}" argument must be of type string. Received ${p === null ? "null" : typeof p}`);
    return p;
  };
  function normalizeSegments(p, absolute) {
    const out = [];
    for (const seg of p.split("/")) {
      if (seg === "" || seg === ".") continue;
      if (seg === "..") {
        if (out.length && out[out.length - 1] !== "..") out.pop();
        else if (!absolute) out.push("..");
      } else out.push(seg);
    }
    return out.join("/");
  }
  const path = {
    sep: "/", delimiter: ":",
    normalize(p) {
      checkPath(p);
      if (p === "") return ".";
      const absolute = p.startsWith("/");
      const trailing = p.endsWith("/");
      let out = normalizeSegments(p, absolute);
      if (out === "" && !absolute) out = ".";
      if (out !== "" && trailing) out += "/";
      return (absolute ? "/" : "") + out;
    },
    join(...parts) {
      parts.forEach((p) => checkPath(p));
      const joined = parts.filter((p) => p !== "").join("/");
      return joined === "" ? "." : path.normalize(joined);
    },
    resolve(...parts) {
      let resolved = "";
      for (let i = parts.length - 1; i >= -1 && !resolved.startsWith("/"); i--) {
        const p = i >= 0 ? checkPath(parts[i], `paths[${i}]`) : "/";
        if (p !== "") resolved = resolved === "" ? p : `${p}/${resolved}`;
      }
      const out = "/" + normalizeSegments(resolved, true);
      return out;
    },
    isAbsolute: (p) => checkPath(p).startsWith("/"),
    dirname(p) {
      checkPath(p);
      if (p === "") return ".";
      const trimmed = p.replace(/\/+$/, "") || "/";
      if (trimmed === "/") return "/";
      const i = trimmed.lastIndexOf("/");
      if (i < 0) return ".";
      return trimmed.slice(0, i).replace(/\/+$/, "") || "/";
    },
    basename(p, ext) {
      checkPath(p);
      const trimmed = p.replace(/\/+$/, "");
      let base = trimmed.slice(trimmed.lastIndexOf("/") + 1);
      if (ext !== undefined && base.endsWith(ext) && base !== ext) base = base.slice(0, -ext.length);
      return base;
    },
    extname(p) {
      const base = path.basename(p);
      const i = base.lastIndexOf(".");
      if (i <= 0 || base === "..") return "";
      return base.slice(i);
    },
    relative(from, to) {
      const a = path.resolve(from).split("/").filter(Boolean);
      const b = path.resolve(to).split("/").filter(Boolean);
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
    },
    parse(p) {
      checkPath(p);
      const root = p.startsWith("/") ? "/" : "";
      const base = path.basename(p);
      const ext = path.extname(p);
      let dir = path.dirname(p);
      if (dir === "." && !p.includes("/")) dir = "";
      return { root, dir, base, ext, name: ext ? base.slice(0, -ext.length) : base };
    },
    format(o) {
      const dir = o.dir || o.root || "";
      const base = o.base || `${o.name || ""}${o.ext ? (o.ext.startsWith(".") ? "" : ".") + o.ext : ""}`;
      return dir ? (dir === o.root ? `${dir}${base}` : `${dir}/${base}`) : base;
    },
    toNamespacedPath: (p) => p,
    matchesGlob: () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "path.matchesGlob() is not implemented"); },
  };
  path.posix = path;
  path.win32 = new Proxy({}, { get() { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "path.win32 is not implemented (only POSIX paths are)"); } });

  // ---- string_decoder --------------------------------------------------------------------------
  class StringDecoder {
    #pending = new Uint8Array(0);
    constructor(encoding) { this.encoding = encodingOf(encoding); }
    write(chunk) {
      if (typeof chunk === "string") return chunk;
      const bytes = new Uint8Array(this.#pending.length + chunk.length);
      bytes.set(this.#pending);
      bytes.set(bytesOf(chunk, "buf"), this.#pending.length);
      const keep = this.#incomplete(bytes);
      this.#pending = bytes.slice(bytes.length - keep);
      return decodeBytes(bytes.subarray(0, bytes.length - keep), this.encoding);
    }
    end(chunk) {
      let out = chunk === undefined ? "" : this.write(chunk);
      if (this.#pending.length) out += decodeBytes(this.#pending, this.encoding === "base64url" || this.encoding === "base64" ? this.encoding : this.encoding === "utf16le" ? "utf16le" : "utf8");
      this.#pending = new Uint8Array(0);
      return out;
    }
    // How many trailing bytes wait for the rest of their character (or base64 group).
    #incomplete(bytes) {
      const n = bytes.length;
      switch (this.encoding) {
        case "utf8":
          for (let back = 1; back <= Math.min(3, n); back++) {
            const b = bytes[n - back];
            if ((b & 0xc0) === 0x80) continue;
            const size = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
            return size > back ? back : 0;
          }
          return 0;
        case "utf16le": {
          if (n % 2) return 1;
          const last = n >= 2 ? bytes[n - 2] | (bytes[n - 1] << 8) : 0;
          return last >= 0xd800 && last <= 0xdbff ? 2 : 0;
        }
        case "base64":
        case "base64url":
          return n % 3;
        default:
          return 0;
      }
    }
  }

  // ---- crypto ----------------------------------------------------------------------------------
  const HASHES = { sha1: "SHA-1", "sha-1": "SHA-1", sha256: "SHA-256", "sha-256": "SHA-256", sha384: "SHA-384", "sha-384": "SHA-384", sha512: "SHA-512", "sha-512": "SHA-512", md5: "MD5" };
  const hashOf = (algorithm) => {
    const name = HASHES[String(algorithm).toLowerCase()];
    if (!name) throw new Error(`Digest method not supported: ${algorithm} (md5, sha1, sha256, sha384 and sha512 are)`);
    return name;
  };
  const dataOf = (data, encoding) => (typeof data === "string" ? encodeString(data, encodingOf(encoding)) : bytesOf(data, "data"));
  const digestOut = (bytes, encoding) => {
    const buffer = fromBytes(bytes);
    return encoding === undefined || encoding === "buffer" ? buffer : buffer.toString(encoding);
  };
  class Hash {
    #algorithm; #parts = []; #done = false; #key;
    constructor(algorithm, key) { this.#algorithm = hashOf(algorithm); this.#key = key; }
    update(data, encoding) {
      if (this.#done) throw nodeError(Error, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called");
      this.#parts.push(dataOf(data, encoding).slice());
      return this;
    }
    digest(encoding) {
      if (this.#done) throw nodeError(Error, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called");
      this.#done = true;
      const data = Buffer.concat(this.#parts);
      const out = this.#key === undefined ? ops.digest(this.#algorithm, data) : ops.hmac(this.#algorithm, this.#key, data);
      return digestOut(out, encoding);
    }
    copy() {
      const copy = new Hash(this.#algorithm, this.#key);
      for (const part of this.#parts) copy.update(part);
      return copy;
    }
  }
  const MAX_RANDOM_BYTES = 2 ** 31 - 1;
  // getRandomValues fills at most 64 KiB a call.
  const fillRandom = (bytes) => {
    for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  };
  function randomBytes(size, callback) {
    if (typeof size !== "number" || !(size >= 0 && size <= MAX_RANDOM_BYTES)) throw rangeError("ERR_OUT_OF_RANGE", `The value of "size" is out of range. It must be >= 0 && <= ${MAX_RANDOM_BYTES}. Received ${size}`);
    const out = Buffer.alloc(size);
    fillRandom(out);
    if (typeof callback === "function") { queueMicrotask(() => callback(null, out)); return undefined; }
    return out;
  }
  const nodeCrypto = {
    createHash: (algorithm) => new Hash(algorithm),
    createHmac: (algorithm, key) => new Hash(algorithm, typeof key === "string" ? ops.encodeUtf8(key) : bytesOf(key, "key").slice()),
    hash: (algorithm, data, encoding = "hex") => new Hash(algorithm).update(data).digest(encoding),
    getHashes: () => ["md5", "sha1", "sha256", "sha384", "sha512"],
    randomBytes, pseudoRandomBytes: randomBytes,
    randomFillSync(buffer, offset = 0, size = undefined) {
      const bytes = bytesOf(buffer, "buf");
      const end = size === undefined ? bytes.length : Math.min(bytes.length, offset + size);
      fillRandom(bytes.subarray(offset, end));
      return buffer;
    },
    randomInt(min, max, callback) {
      if (max === undefined || typeof max === "function") { callback = max; max = min; min = 0; }
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max <= min) throw rangeError("ERR_OUT_OF_RANGE", `The value of "max" is out of range. It must be greater than the value of "min" (${min}). Received ${max}`);
      const range = max - min;
      const words = new Uint32Array(2);
      crypto.getRandomValues(words);
      const value = min + Math.floor(((words[0] * 2 ** 21 + (words[1] >>> 11)) / 2 ** 53) * range);
      if (typeof callback === "function") { queueMicrotask(() => callback(null, value)); return undefined; }
      return value;
    },
    randomUUID: () => crypto.randomUUID(),
    getRandomValues: (array) => crypto.getRandomValues(array),
    timingSafeEqual(a, b) {
      const x = bytesOf(a, "buf1"), y = bytesOf(b, "buf2");
      if (x.byteLength !== y.byteLength) throw new TypeError("Input buffers must have the same byte length");
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
      return diff === 0;
    },
    webcrypto: globalThis.crypto, subtle: globalThis.crypto.subtle,
    constants: {},
  };
  for (const name of ["createCipheriv", "createDecipheriv", "createSign", "createVerify", "generateKeyPairSync", "generateKeyPair", "createPrivateKey", "createPublicKey", "createSecretKey", "pbkdf2Sync", "scryptSync", "createDiffieHellman", "createECDH", "publicEncrypt", "privateDecrypt"]) {
    nodeCrypto[name] = () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", `crypto.${name}() is not implemented in NANO yet; use crypto.subtle (Web Crypto) instead`); };
  }

  // ---- async_hooks: AsyncLocalStorage ----------------------------------------------------------
  // The current frame (a Map from storage to store, or undefined) is V8's continuation-preserved
  // embedder data: V8 captures it with every promise reaction and restores it when the reaction
  // runs, so it follows `await`; timers capture and restore it themselves (runtime/timers.js).
  class AsyncLocalStorage {
    static bind(fn) { return AsyncResource.bind(fn); }
    static snapshot() { const frame = ops.asyncContext(); return (fn, ...args) => withFrame(frame, fn, args); }
    run(store, fn, ...args) {
      const frame = new Map(ops.asyncContext() ?? undefined);
      frame.set(this, store);
      return withFrame(frame, fn, args);
    }
    exit(fn, ...args) {
      const frame = new Map(ops.asyncContext() ?? undefined);
      frame.delete(this);
      return withFrame(frame.size ? frame : undefined, fn, args);
    }
    enterWith(store) {
      const frame = new Map(ops.asyncContext() ?? undefined);
      frame.set(this, store);
      ops.setAsyncContext(frame);
    }
    getStore() { return ops.asyncContext()?.get(this); }
    disable() {
      const frame = ops.asyncContext();
      if (frame?.has(this)) {
        const next = new Map(frame);
        next.delete(this);
        ops.setAsyncContext(next);
      }
    }
  }
  function withFrame(frame, fn, args, self) {
    const previous = ops.asyncContext();
    ops.setAsyncContext(frame);
    try {
      return Reflect.apply(fn, self, args);
    } finally {
      ops.setAsyncContext(previous);
    }
  }
  class AsyncResource {
    #frame = ops.asyncContext();
    constructor(type) { this.type = type; }
    runInAsyncScope(fn, self, ...args) { return withFrame(this.#frame, fn, args, self); }
    bind(fn) { const bound = (...args) => this.runInAsyncScope(fn, undefined, ...args); return bound; }
    emitDestroy() { return this; }
    asyncId() { return 0; }
    triggerAsyncId() { return 0; }
    static bind(fn, type) { return new AsyncResource(type ?? fn.name ?? "bound-anonymous-fn").bind(fn); }
  }
  const asyncHooks = { AsyncLocalStorage, AsyncResource };

  // ---- process, global, setImmediate -----------------------------------------------------------
  const processObject = new EventEmitter();
  Object.assign(processObject, {
    title: "workerd", argv: ["workerd"], execArgv: [], argv0: "workerd", pid: 1, ppid: 0,
    version: "v22.14.0", versions: { node: "22.14.0" }, platform: "linux", arch: "x64",
    env: {}, release: { name: "node" }, features: {}, config: {}, exitCode: undefined,
    cwd: () => "/bundle", chdir: () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "process.chdir() is not supported"); },
    umask: () => 0o22, uptime: () => ops.now() / 1000,
    hrtime: Object.assign((previous) => {
      const now = ops.now();
      const seconds = Math.floor(now / 1000), nanos = Math.floor((now % 1000) * 1e6);
      if (!previous) return [seconds, nanos];
      let [s, n] = [seconds - previous[0], nanos - previous[1]];
      if (n < 0) { s--; n += 1e9; }
      return [s, n];
    }, { bigint: () => BigInt(Math.floor(ops.now() * 1e6)) }),
    memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), { rss: () => 0 }),
    nextTick(callback, ...args) {
      if (typeof callback !== "function") throw typeError("ERR_INVALID_ARG_TYPE", 'The "callback" argument must be of type function');
      queueMicrotask(() => callback(...args));
    },
    emitWarning: (warning) => console.warn(typeof warning === "string" ? `Warning: ${warning}` : String(warning)),
    exit: () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "process.exit() is not supported: return a Response instead"); },
    abort: () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "process.abort() is not supported"); },
    getBuiltinModule: (name) => modules[String(name).replace(/^node:/, "")],
  });

  // ---- stream (Node's streams, on EventEmitter) ---------------------------------------------
  // The classic Node stream classes as most npm code uses them: flowing and paused reads,
  // push/read, pipe with backpressure, async iteration, writes with highWaterMark and 'drain',
  // final/finish/close, Duplex, Transform, PassThrough, pipeline and finished. Events that Node
  // emits on process.nextTick are emitted as microtasks.
  const tick = (fn, ...args) => queueMicrotask(() => fn(...args));
  const DEFAULT_HWM = 16 * 1024;
  const DEFAULT_OBJECT_HWM = 16;
  const chunkSize = (objectMode, chunk) => (objectMode ? 1 : chunk.length);
  const toChunk = (chunk, encoding, objectMode) => {
    if (objectMode) return chunk;
    if (typeof chunk === "string") return Buffer.from(chunk, encoding);
    if (chunk instanceof Uint8Array && !(chunk instanceof Buffer)) return fromBytes(chunk);
    if (chunk instanceof Buffer) return chunk;
    throw typeError("ERR_INVALID_ARG_TYPE", 'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
  };

  function Stream(options) { EventEmitter.call(this, options); }
  Object.setPrototypeOf(Stream.prototype, EventEmitter.prototype);
  Object.setPrototypeOf(Stream, EventEmitter);
  Stream.prototype.pipe = function pipe(dest, options) { return Readable.prototype.pipe.call(this, dest, options); };

  function destroyStream(stream, err, cb) {
    const state = stream._state;
    if (state.destroyed) { cb?.(err); return stream; }
    state.destroyed = true;
    stream._destroy(err ?? null, (error) => {
      if (error) {
        state.errored = error;
        tick(() => { stream.emit("error", error); stream.emit("close"); });
      } else {
        tick(() => stream.emit("close"));
      }
      cb?.(error);
    });
    return stream;
  }

  class Readable extends Stream {
    constructor(options = {}) {
      super(options);
      const objectMode = Boolean(options.objectMode || options.readableObjectMode);
      this._state = Object.assign(this._state ?? {}, {
        objectMode: objectMode,
        readableObjectMode: objectMode,
        highWaterMark: options.highWaterMark ?? options.readableHighWaterMark ?? (objectMode ? DEFAULT_OBJECT_HWM : DEFAULT_HWM),
        buffer: [], length: 0, flowing: null, ended: false, endEmitted: false, reading: false,
        destroyed: false, errored: null, decoder: null, autoDestroy: options.autoDestroy !== false, flowScheduled: false,
      });
      if (options.encoding) this.setEncoding(options.encoding);
      if (typeof options.read === "function") this._read = options.read;
      if (typeof options.destroy === "function") this._destroy = options.destroy;
      this.on("newListener", (event) => {
        if (event === "data" && this._state.flowing !== false) this.resume();
        if (event === "readable") tick(() => this._state.length > 0 && this.emit("readable"));
      });
    }
    get readable() { const s = this._state; return !s.destroyed && !s.endEmitted && !s.errored; }
    get readableEnded() { return this._state.endEmitted; }
    get readableFlowing() { return this._state.flowing; }
    get readableLength() { return this._state.length; }
    get readableObjectMode() { return this._state.readableObjectMode; }
    get readableHighWaterMark() { return this._state.highWaterMark; }
    get readableEncoding() { return this._state.decoder?.encoding ?? null; }
    get destroyed() { return this._state.destroyed; }
    set destroyed(value) { this._state.destroyed = Boolean(value); }
    get errored() { return this._state.errored; }
    _read() { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "The _read() method is not implemented"); }
    _destroy(err, cb) { cb(err); }
    destroy(err, cb) { return destroyStream(this, err, cb); }
    setEncoding(encoding) {
      const s = this._state;
      s.decoder = new StringDecoder(encoding);
      s.buffer = s.buffer.map((c) => (typeof c === "string" ? c : s.decoder.write(c)));
      return this;
    }
    push(chunk, encoding) {
      const s = this._state;
      s.reading = false;
      if (chunk === null) {
        if (!s.ended) {
          s.ended = true;
          if (s.decoder) {
            const rest = s.decoder.end();
            if (rest) { s.buffer.push(rest); s.length += chunkSize(s.objectMode, rest); }
          }
          this.#schedule();
        }
        return false;
      }
      if (s.ended) {
        this.destroy(nodeError(Error, "ERR_STREAM_PUSH_AFTER_EOF", "stream.push() after EOF"));
        return false;
      }
      let value = typeof chunk === "string" && !s.objectMode && s.decoder ? chunk : toChunk(chunk, encoding, s.objectMode);
      if (s.decoder && typeof value !== "string" && (value instanceof Uint8Array)) value = s.decoder.write(value);
      if (!s.objectMode && value.length === 0) return s.length < s.highWaterMark;
      s.buffer.push(value);
      s.length += chunkSize(s.objectMode, value);
      if (s.flowing !== true) tick(() => this.emit("readable"));
      this.#schedule();
      return s.length < s.highWaterMark;
    }
    unshift(chunk) {
      const s = this._state;
      const value = toChunk(chunk, undefined, s.objectMode);
      s.buffer.unshift(value);
      s.length += chunkSize(s.objectMode, value);
    }
    read(n) {
      const s = this._state;
      if (s.buffer.length === 0) {
        this.#pull();
        this.#maybeEnd();
        return null;
      }
      let out;
      if (s.objectMode || n === undefined || n >= s.length) {
        out = s.objectMode ? s.buffer.shift() : typeof s.buffer[0] === "string" ? s.buffer.splice(0).join("") : Buffer.concat(s.buffer.splice(0));
      } else {
        const all = typeof s.buffer[0] === "string" ? s.buffer.join("") : Buffer.concat(s.buffer);
        out = all.slice(0, n);
        s.buffer = [all.slice(n)];
      }
      s.length -= chunkSize(s.objectMode, out);
      this.#pull();
      this.#maybeEnd();
      return out;
    }
    // 'end' once the data has all been consumed (by reads or by flowing).
    #maybeEnd() {
      const s = this._state;
      if (!s.ended || s.buffer.length > 0 || s.endEmitted) return;
      s.endEmitted = true;
      tick(() => {
        this.emit("end");
        const writableDone = !s.writableInitialized || s.writableFinished;
        if (s.autoDestroy && writableDone) this.destroy();
      });
    }
    // Asks the implementation for more when the buffer is under its high-water mark.
    #pull() {
      const s = this._state;
      if (s.ended || s.reading || s.destroyed || s.length >= s.highWaterMark) return;
      s.reading = true;
      try {
        this._read(s.objectMode ? 1 : s.highWaterMark);
      } catch (err) {
        this.destroy(err);
      }
    }
    #schedule() {
      const s = this._state;
      if (s.flowScheduled) return;
      s.flowScheduled = true;
      tick(() => { s.flowScheduled = false; this.#flow(); });
    }
    #flow() {
      const s = this._state;
      if (s.destroyed) return;
      while (s.flowing && s.buffer.length > 0) {
        const chunk = s.buffer.shift();
        s.length -= chunkSize(s.objectMode, chunk);
        this.emit("data", chunk);
      }
      if (s.flowing) {
        this.#maybeEnd();
        this.#pull();
      }
    }
    resume() {
      const s = this._state;
      if (s.flowing !== true) {
        s.flowing = true;
        tick(() => this.emit("resume"));
        this.#pull();
        this.#schedule();
      }
      return this;
    }
    pause() {
      if (this._state.flowing !== false) {
        this._state.flowing = false;
        this.emit("pause");
      }
      return this;
    }
    isPaused() { return this._state.flowing === false; }
    pipe(dest, options = {}) {
      const src = this;
      const ondata = (chunk) => { if (dest.write(chunk) === false) { src.pause(); dest.once("drain", () => src.resume()); } };
      src.on("data", ondata);
      if (options.end !== false) src.once("end", () => dest.end());
      src.once("error", (err) => { if (typeof dest.destroy === "function") dest.destroy(err); });
      dest.emit("pipe", src);
      src.resume();
      return dest;
    }
    unpipe() { this.removeAllListeners("data"); this.pause(); return this; }
    // Iteration reads in paused mode, as Node's does: what is buffered comes out joined.
    [Symbol.asyncIterator]() {
      const stream = this;
      let done = false, failure = null, wake = null;
      const notify = () => { if (wake) { const w = wake; wake = null; w(); } };
      stream.on("readable", notify);
      stream.once("end", () => { done = true; notify(); });
      stream.once("error", (err) => { failure = err; notify(); });
      stream.once("close", () => { done = true; notify(); });
      return {
        async next() {
          for (;;) {
            if (failure) throw failure;
            const chunk = stream._state.destroyed ? null : stream.read();
            if (chunk !== null) return { value: chunk, done: false };
            if (done || stream._state.endEmitted) return { value: undefined, done: true };
            await new Promise((resolve) => { wake = resolve; });
          }
        },
        async return() { if (!done) stream.destroy(); return { value: undefined, done: true }; },
        [Symbol.asyncIterator]() { return this; },
      };
    }
    static from(iterable, options = {}) {
      if (typeof iterable === "string" || iterable instanceof Uint8Array) iterable = [iterable];
      const iterator = iterable[Symbol.asyncIterator]?.() ?? iterable[Symbol.iterator]();
      let busy = false;
      return new Readable({
        objectMode: true,
        ...options,
        read() {
          if (busy) return;
          busy = true;
          Promise.resolve(iterator.next()).then(({ value, done }) => {
            busy = false;
            if (done) this.push(null);
            else if (this.push(value)) this._read();
          }, (err) => this.destroy(err));
        },
        destroy(err, cb) {
          Promise.resolve(iterator.return?.()).then(() => cb(err), cb);
        },
      });
    }
  }

  // Writable's methods, shared with Duplex.
  const writableMethods = {
    _initWritable(options = {}) {
      const objectMode = Boolean(options.objectMode || options.writableObjectMode);
      this._state = Object.assign(this._state ?? {}, {
        writableInitialized: true,
        writableObjectMode: objectMode,
        writableHighWaterMark: options.highWaterMark ?? options.writableHighWaterMark ?? (objectMode ? DEFAULT_OBJECT_HWM : DEFAULT_HWM),
        decodeStrings: options.decodeStrings !== false,
        queue: [], writableLength: 0, writing: false, needDrain: false, ending: false,
        writableFinished: false, finalCalled: false,
        destroyed: this._state?.destroyed ?? false, errored: this._state?.errored ?? null,
        autoDestroy: options.autoDestroy !== false,
      });
      if (typeof options.write === "function") this._write = options.write;
      if (typeof options.writev === "function") this._writev = options.writev;
      if (typeof options.final === "function") this._final = options.final;
      if (typeof options.destroy === "function") this._destroy = options.destroy;
    },
    write(chunk, encoding, cb) {
      if (typeof encoding === "function") { cb = encoding; encoding = undefined; }
      const s = this._state;
      if (s.ending || s.destroyed) {
        const err = nodeError(Error, s.destroyed ? "ERR_STREAM_DESTROYED" : "ERR_STREAM_WRITE_AFTER_END", s.destroyed ? "Cannot call write after a stream was destroyed" : "write after end");
        tick(() => { cb?.(err); this.emit("error", err); });
        return false;
      }
      if (chunk === null) throw typeError("ERR_STREAM_NULL_VALUES", "May not write null values to stream");
      // Object mode passes the encoding it was given (usually none), as Node does.
      let value = chunk, enc = s.writableObjectMode ? encoding : encoding ?? "utf8";
      if (!s.writableObjectMode) {
        if (typeof chunk === "string" && s.decodeStrings) { value = Buffer.from(chunk, encoding); enc = "buffer"; }
        else if (chunk instanceof Uint8Array) { value = chunk instanceof Buffer ? chunk : fromBytes(chunk); enc = "buffer"; }
        else if (typeof chunk !== "string") throw typeError("ERR_INVALID_ARG_TYPE", 'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
      }
      s.writableLength += chunkSize(s.writableObjectMode, value);
      const ok = s.writableLength < s.writableHighWaterMark;
      if (!ok) s.needDrain = true;
      s.queue.push({ value, enc, cb });
      if (!s.writing) this._nextWrite();
      return ok;
    },
    // Writes what is queued, one at a time. A write that completes synchronously updates the
    // state at once (only its callback waits for a microtask), as in Node, so the loop goes on
    // and end() can run _final in the same turn; an asynchronous one continues from onwrite.
    _nextWrite() {
      const s = this._state;
      while (!s.writing && !s.destroyed) {
        const entry = s.queue.shift();
        if (entry === undefined) {
          if (s.needDrain) { s.needDrain = false; tick(() => this.emit("drain")); }
          if (s.ending) this._finishMaybe();
          return;
        }
        s.writing = true;
        let sync = true;
        let completedSync = false;
        const onwrite = (err) => {
          s.writing = false;
          s.writableLength -= chunkSize(s.writableObjectMode, entry.value);
          if (err) {
            tick(() => entry.cb?.(err));
            this.destroy(err);
            return;
          }
          if (sync) {
            completedSync = true;
            if (entry.cb) tick(entry.cb, null);
          } else {
            entry.cb?.(null);
            this._nextWrite();
          }
        };
        try {
          this._write(entry.value, entry.enc, onwrite);
        } catch (err) {
          onwrite(err);
        }
        sync = false;
        if (!completedSync) return;
      }
    },
    _write(chunk, encoding, cb) {
      if (typeof this._writev === "function") return this._writev([{ chunk, encoding }], cb);
      throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "The _write() method is not implemented");
    },
    end(chunk, encoding, cb) {
      if (typeof chunk === "function") { cb = chunk; chunk = undefined; }
      else if (typeof encoding === "function") { cb = encoding; encoding = undefined; }
      const s = this._state;
      if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
      if (typeof cb === "function") {
        if (s.writableFinished) tick(cb);
        else this.once("finish", () => cb());
      }
      if (!s.ending) {
        s.ending = true;
        if (!s.writing && s.queue.length === 0) this._finishMaybe();
      }
      return this;
    },
    _finishMaybe() {
      const s = this._state;
      if (s.finalCalled || s.destroyed) return;
      s.finalCalled = true;
      const finish = (err) => {
        if (err) { this.destroy(err); return; }
        s.writableFinished = true;
        tick(() => {
          this.emit("finish");
          const readDone = !(this instanceof Readable) || this._state.endEmitted;
          if (s.autoDestroy && readDone) this.destroy();
        });
      };
      if (typeof this._final === "function") {
        try { this._final(finish); } catch (err) { finish(err); }
      } else {
        finish();
      }
    },
    cork() {},
    uncork() {},
    setDefaultEncoding() { return this; },
  };
  const writableGetters = {
    writable() { const s = this._state; return !s.destroyed && !s.ending && !s.errored; },
    writableEnded() { return this._state.ending; },
    writableFinished() { return this._state.writableFinished; },
    writableLength() { return this._state.writableLength; },
    writableHighWaterMark() { return this._state.writableHighWaterMark; },
    writableObjectMode() { return this._state.writableObjectMode; },
    writableNeedDrain() { return this._state.needDrain; },
  };
  const mixWritable = (proto) => {
    for (const [name, fn] of Object.entries(writableMethods)) Object.defineProperty(proto, name, { value: fn, writable: true, configurable: true });
    for (const [name, get] of Object.entries(writableGetters)) Object.defineProperty(proto, name, { get, configurable: true });
  };

  class Writable extends Stream {
    constructor(options = {}) {
      super(options);
      this._state = { destroyed: false, errored: null };
      this._initWritable(options);
    }
    get destroyed() { return this._state.destroyed; }
    set destroyed(value) { this._state.destroyed = Boolean(value); }
    get errored() { return this._state.errored; }
    _destroy(err, cb) { cb(err); }
    destroy(err, cb) { return destroyStream(this, err, cb); }
  }
  mixWritable(Writable.prototype);

  class Duplex extends Readable {
    constructor(options = {}) {
      super(options);
      this._initWritable(options);
      this.allowHalfOpen = options.allowHalfOpen !== false;
      if (!this.allowHalfOpen) this.once("end", () => this.end());
    }
    static from(source) {
      if (source instanceof Duplex) return source;
      return Readable.from(source);
    }
  }
  mixWritable(Duplex.prototype);

  class Transform extends Duplex {
    constructor(options = {}) {
      super(options);
      if (typeof options.transform === "function") this._transform = options.transform;
      if (typeof options.flush === "function") this._flush = options.flush;
    }
    _transform() { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "The _transform() method is not implemented"); }
    _write(chunk, encoding, cb) {
      this._transform(chunk, encoding, (err, data) => {
        if (err) return cb(err);
        if (data !== undefined && data !== null) this.push(data);
        cb();
      });
    }
    _final(cb) {
      const done = (err, data) => {
        if (err) return cb(err);
        if (data !== undefined && data !== null) this.push(data);
        this.push(null);
        cb();
      };
      if (typeof this._flush === "function") this._flush(done);
      else done();
    }
    _read() {}
  }

  class PassThrough extends Transform {
    _transform(chunk, encoding, cb) { cb(null, chunk); }
  }

  function finished(stream, options, callback) {
    if (typeof options === "function") { callback = options; options = {}; }
    let called = false;
    const done = (err) => { if (!called) { called = true; cleanup(); callback.call(stream, err); } };
    const onend = () => done();
    const onfinish = () => { if (!(stream instanceof Readable) || stream.readableEnded) done(); };
    const onerror = (err) => done(err);
    const onclose = () => {
      const s = stream._state ?? {};
      const complete = (!(stream instanceof Readable) || s.endEmitted) && (!s.writableInitialized || s.writableFinished);
      done(complete ? undefined : nodeError(Error, "ERR_STREAM_PREMATURE_CLOSE", "Premature close"));
    };
    const cleanup = () => {
      stream.removeListener("end", onend);
      stream.removeListener("finish", onfinish);
      stream.removeListener("error", onerror);
      stream.removeListener("close", onclose);
    };
    stream.on("end", onend);
    stream.on("finish", onfinish);
    stream.on("error", onerror);
    stream.on("close", onclose);
    return cleanup;
  }

  function pipeline(...streams) {
    const callback = typeof streams[streams.length - 1] === "function" ? streams.pop() : null;
    if (streams.length === 1 && Array.isArray(streams[0])) streams = streams[0];
    if (streams.length < 2) throw typeError("ERR_MISSING_ARGS", 'The "streams" argument must be specified');
    streams = streams.map((s, i) => (i === 0 && !(s instanceof Stream) && (s?.[Symbol.asyncIterator] || s?.[Symbol.iterator]) ? Readable.from(s) : s));
    let settled = false;
    const settle = (err) => {
      if (settled) return;
      settled = true;
      if (err) for (const s of streams) if (!s.destroyed) s.destroy(err);
      callback?.(err);
    };
    for (const s of streams) s.on("error", settle);
    for (let i = 0; i < streams.length - 1; i++) streams[i].pipe(streams[i + 1]);
    finished(streams[streams.length - 1], (err) => settle(err));
    return streams[streams.length - 1];
  }

  const streamPromises = {
    pipeline: (...streams) => new Promise((resolve, reject) => pipeline(...streams, (err) => (err ? reject(err) : resolve()))),
    finished: (stream, options) => new Promise((resolve, reject) => finished(stream, options ?? {}, (err) => (err ? reject(err) : resolve()))),
  };
  Object.assign(Stream, {
    Stream, Readable, Writable, Duplex, Transform, PassThrough, pipeline, finished, promises: streamPromises,
    isReadable: (s) => s instanceof Readable && s.readable,
    isErrored: (s) => Boolean(s?._state?.errored),
    getDefaultHighWaterMark: (objectMode) => (objectMode ? DEFAULT_OBJECT_HWM : DEFAULT_HWM),
  });

  // process.stdout, stderr and stdin, as workerd has them (libraries read process.stdout.isTTY
  // and write to process.stderr): what is written goes to the app's log, stdout as console.log
  // and stderr as console.error, a line per write; none is a TTY, stdin is empty.
  const stdio = (fd, print) => {
    const stream = new Writable({
      write(chunk, encoding, callback) {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
        print(text.endsWith("\n") ? text.slice(0, -1) : text);
        callback();
      },
    });
    stream.fd = fd;
    return stream;
  };
  processObject.stdout = stdio(1, (text) => console.log(text));
  processObject.stderr = stdio(2, (text) => console.error(text));
  processObject.stdin = Object.assign(new Readable({ read() { this.push(null); } }), { fd: 0 });

  // ---- zlib (over the codec ops of CompressionStream: flate2) ------------------------------
  // gzip, deflate and raw deflate, sync, callback and stream forms; unzip detects gzip. The
  // compression level and window options are accepted and ignored (flate2's default level);
  // brotli is not there yet.
  const ZLIB_FORMATS = {
    gzip: ["compress", "gzip"], gunzip: ["decompress", "gzip"],
    deflate: ["compress", "deflate"], inflate: ["decompress", "deflate"],
    deflateRaw: ["compress", "deflate-raw"], inflateRaw: ["decompress", "deflate-raw"],
  };
  const zlibInput = (input) => (typeof input === "string" ? encodeString(input, "utf8") : bytesOf(input, "buffer"));
  // A codec failure is a plain Error here, as on workerd.
  const zlibError = (err) => (err instanceof TypeError ? new Error(err.message) : err);
  const formatFor = (name, bytes) => (name === "unzip" ? (bytes[0] === 0x1f && bytes[1] === 0x8b ? "gunzip" : "inflate") : name);
  function zlibSync(name, input) {
    const bytes = zlibInput(input);
    const [kind, format] = ZLIB_FORMATS[formatFor(name, bytes)];
    const codec = ops.codecOpen(kind, format);
    const parts = [];
    try {
      parts.push(...feedCodec(codec, kind, bytes), ops.compressFinish(codec));
    } catch (err) {
      ops.codecClose(codec);
      throw zlibError(err);
    }
    return Buffer.concat(parts);
  }
  class ZlibStream extends Transform {
    #name; #codec = 0; #kind = "";
    constructor(name, options = {}) {
      super(options);
      this.#name = name;
    }
    _transform(chunk, encoding, cb) {
      try {
        const bytes = zlibInput(chunk);
        if (this.#codec === 0) {
          const [kind, format] = ZLIB_FORMATS[formatFor(this.#name, bytes)];
          this.#codec = ops.codecOpen(kind, format);
          this.#kind = kind;
        }
        for (const out of feedCodec(this.#codec, this.#kind, bytes)) this.push(fromBytes(out));
        cb();
      } catch (err) {
        this.#codec = 0;
        cb(zlibError(err));
      }
    }
    _flush(cb) {
      try {
        if (this.#codec === 0) this.#codec = ops.codecOpen(...ZLIB_FORMATS[formatFor(this.#name, new Uint8Array(0))]);
        const out = ops.compressFinish(this.#codec);
        this.#codec = 0;
        if (out.length) this.push(fromBytes(out));
        cb();
      } catch (err) {
        cb(zlibError(err));
      }
    }
    _destroy(err, cb) {
      if (this.#codec !== 0) ops.codecClose(this.#codec);
      this.#codec = 0;
      cb(err);
    }
  }
  const CRC_TABLE = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const zlibModule = {
    constants: {
      Z_NO_FLUSH: 0, Z_PARTIAL_FLUSH: 1, Z_SYNC_FLUSH: 2, Z_FULL_FLUSH: 3, Z_FINISH: 4, Z_BLOCK: 5,
      Z_OK: 0, Z_STREAM_END: 1, Z_NEED_DICT: 2, Z_ERRNO: -1, Z_STREAM_ERROR: -2, Z_DATA_ERROR: -3,
      Z_MEM_ERROR: -4, Z_BUF_ERROR: -5, Z_VERSION_ERROR: -6, Z_NO_COMPRESSION: 0, Z_BEST_SPEED: 1,
      Z_BEST_COMPRESSION: 9, Z_DEFAULT_COMPRESSION: -1, Z_FILTERED: 1, Z_HUFFMAN_ONLY: 2, Z_RLE: 3,
      Z_FIXED: 4, Z_DEFAULT_STRATEGY: 0,
    },
    crc32(data, value = 0) {
      const bytes = zlibInput(data);
      let crc = ~value;
      for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
      return ~crc >>> 0;
    },
  };
  for (const name of [...Object.keys(ZLIB_FORMATS), "unzip"]) {
    const Name = name[0].toUpperCase() + name.slice(1);
    zlibModule[`${name}Sync`] = (input) => zlibSync(name, input);
    zlibModule[name] = (input, options, callback) => {
      if (typeof options === "function") callback = options;
      queueMicrotask(() => {
        let result;
        try { result = zlibSync(name, input); } catch (err) { callback(err); return; }
        callback(null, result);
      });
    };
    zlibModule[`create${Name}`] = (options) => new ZlibStream(name, options);
  }
  for (const name of ["brotliCompressSync", "brotliDecompressSync", "brotliCompress", "brotliDecompress", "createBrotliCompress", "createBrotliDecompress"]) {
    zlibModule[name] = () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", `zlib.${name}() is not implemented in NANO yet (gzip and deflate are)`); };
  }

  // ---- querystring -------------------------------------------------------------------------
  // Invalid percent escapes stay as they are (Node's unescapeBuffer).
  function unescapeBuffer(s) {
    const out = [];
    const text = encodeString(String(s), "utf8");
    for (let i = 0; i < text.length; i++) {
      const hex = text[i] === 0x25 && i + 2 < text.length ? String.fromCharCode(text[i + 1], text[i + 2]) : "";
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        out.push(parseInt(hex, 16));
        i += 2;
      } else {
        out.push(text[i]);
      }
    }
    return Buffer.from(out);
  }
  const qsUnescape = (s) => {
    try { return decodeURIComponent(s); } catch { return unescapeBuffer(s).toString(); }
  };
  const qsPrimitive = (v) => {
    if (typeof v === "string") return v;
    if (typeof v === "number") return Number.isFinite(v) ? String(v) : "";
    if (typeof v === "bigint") return String(v);
    if (typeof v === "boolean") return v ? "true" : "false";
    return "";
  };
  const querystringModule = {
    escape: (s) => encodeURIComponent(String(s)),
    unescape: qsUnescape,
    unescapeBuffer,
    parse(text, sep = "&", eq = "=", options = {}) {
      const out = Object.create(null);
      if (typeof text !== "string" || text.length === 0) return out;
      const decode = options.decodeURIComponent ?? qsUnescape;
      const maxKeys = options.maxKeys ?? 1000;
      let parts = text.split(sep);
      if (maxKeys > 0) parts = parts.slice(0, maxKeys);
      for (const part of parts) {
        if (part === "") continue;
        const at = part.indexOf(eq);
        const rawKey = at >= 0 ? part.slice(0, at) : part;
        const rawValue = at >= 0 ? part.slice(at + eq.length) : "";
        const key = decode(rawKey.replace(/\+/g, " "));
        const value = decode(rawValue.replace(/\+/g, " "));
        if (!(key in out)) out[key] = value;
        else if (Array.isArray(out[key])) out[key].push(value);
        else out[key] = [out[key], value];
      }
      return out;
    },
    stringify(object, sep = "&", eq = "=", options = {}) {
      if (object === null || typeof object !== "object") return "";
      const encode = options.encodeURIComponent ?? querystringModule.escape;
      const pairs = [];
      for (const key of Object.keys(object)) {
        const value = object[key];
        const name = encode(qsPrimitive(key));
        if (Array.isArray(value)) for (const item of value) pairs.push(`${name}${eq}${encode(qsPrimitive(item))}`);
        else pairs.push(`${name}${eq}${encode(qsPrimitive(value))}`);
      }
      return pairs.join(sep);
    },
  };
  querystringModule.decode = querystringModule.parse;
  querystringModule.encode = querystringModule.stringify;

  // ---- stream/consumers ----------------------------------------------------------------------
  const consumeBytes = async (stream) => {
    const parts = [];
    for await (const chunk of stream) parts.push(typeof chunk === "string" ? encodeString(chunk, "utf8") : bytesOf(chunk, "chunk"));
    return Buffer.concat(parts);
  };
  const consumeText = async (stream) => {
    const decoder = new TextDecoder();
    let out = "";
    for await (const chunk of stream) out += typeof chunk === "string" ? chunk : decoder.decode(bytesOf(chunk, "chunk"), { stream: true });
    return out + decoder.decode();
  };
  const consumersModule = {
    buffer: consumeBytes,
    text: consumeText,
    json: async (stream) => JSON.parse(await consumeText(stream)),
    arrayBuffer: async (stream) => {
      const bytes = await consumeBytes(stream);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    },
    blob: async (stream) => new Blob([await consumeBytes(stream)]),
  };

  // ---- diagnostics_channel -------------------------------------------------------------------
  class Channel {
    #name; #subscribers = [];
    constructor(name) { this.#name = name; }
    get hasSubscribers() { return this.#subscribers.length > 0; }
    subscribe(subscriber) { this.#subscribers.push(subscriber); }
    unsubscribe(subscriber) {
      const at = this.#subscribers.indexOf(subscriber);
      if (at < 0) return false;
      this.#subscribers.splice(at, 1);
      return true;
    }
    publish(message) { for (const subscriber of [...this.#subscribers]) subscriber(message, this.#name); }
    runStores(data, fn, thisArg, ...args) {
      this.publish(data);
      return Reflect.apply(fn, thisArg, args);
    }
  }
  const channels = new Map();
  const channel = (name) => {
    if (!channels.has(name)) channels.set(name, new Channel(name));
    return channels.get(name);
  };
  const diagnosticsModule = {
    Channel, channel,
    hasSubscribers: (name) => channels.get(name)?.hasSubscribers ?? false,
    subscribe: (name, subscriber) => channel(name).subscribe(subscriber),
    unsubscribe: (name, subscriber) => channels.get(name)?.unsubscribe(subscriber) ?? false,
  };

  // ---- url ---------------------------------------------------------------------------------------
  const urlModule = {
    URL, URLSearchParams,
    fileURLToPath(input) {
      const url = typeof input === "string" ? new URL(input) : input;
      if (url.protocol !== "file:") throw typeError("ERR_INVALID_URL_SCHEME", "The URL must be of scheme file");
      if (url.hostname !== "") throw typeError("ERR_INVALID_FILE_URL_HOST", 'File URL host must be "localhost" or empty on linux');
      if (/%2f/i.test(url.pathname)) throw typeError("ERR_INVALID_FILE_URL_PATH", "File URL path must not include encoded / characters");
      return decodeURIComponent(url.pathname);
    },
    pathToFileURL(p) {
      const resolved = path.resolve(checkPath(p));
      const url = new URL("file://");
      url.pathname = resolved.replace(/%/g, "%25").replace(/\\/g, "%5C").replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/\t/g, "%09") + (p.endsWith("/") && resolved !== "/" ? "/" : "");
      return url;
    },
    format(input) { return input instanceof URL ? input.href : String(input?.href ?? ""); },
    domainToASCII: (domain) => { try { return new URL(`http://${domain}`).hostname; } catch { return ""; } },
    domainToUnicode: (domain) => String(domain),
  };

  // ---- the module table --------------------------------------------------------------------------
  const streamModule = {
    ReadableStream, WritableStream, TransformStream,
  };
  const modules = {
    buffer: bufferModule,
    events: EventEmitter,
    util,
    "util/types": types,
    assert,
    "assert/strict": assert.strict,
    path,
    "path/posix": path,
    string_decoder: { StringDecoder },
    crypto: nodeCrypto,
    async_hooks: asyncHooks,
    process: processObject,
    url: urlModule,
    "stream/web": streamModule,
    stream: Stream,
    "stream/promises": streamPromises,
    "stream/consumers": consumersModule,
    zlib: zlibModule,
    querystring: querystringModule,
    diagnostics_channel: diagnosticsModule,
    perf_hooks: (() => {
      const { performance } = globalThis;
      const notImplemented = (name) => () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", `The ${name} method is not implemented`); };
      const GC = { MAJOR: 4, MINOR: 1, INCREMENTAL: 8, WEAKCB: 16, FLAGS_NO: 0, FLAGS_CONSTRUCT_RETAINED: 2, FLAGS_FORCED: 4,
        FLAGS_SYNCHRONOUS_PHANTOM_PROCESSING: 8, FLAGS_ALL_AVAILABLE_GARBAGE: 16, FLAGS_ALL_EXTERNAL_MEMORY: 32, FLAGS_SCHEDULE_IDLE: 64 };
      const constants = {};
      for (const [name, value] of Object.entries(GC)) constants[`NODE_PERFORMANCE_GC_${name}`] = value;
      ["GC", "HTTP", "HTTP2", "NET", "DNS"].forEach((name, i) => { constants[`NODE_PERFORMANCE_ENTRY_TYPE_${name}`] = i; });
      ["TIME_ORIGIN_TIMESTAMP", "TIME_ORIGIN", "ENVIRONMENT", "NODE_START", "V8_START", "LOOP_START", "LOOP_EXIT",
        "BOOTSTRAP_COMPLETE"].forEach((name, i) => { constants[`NODE_PERFORMANCE_MILESTONE_${name}`] = i; });
      return {
        performance, Performance, PerformanceEntry, PerformanceMark, PerformanceMeasure, PerformanceObserver,
        PerformanceObserverEntryList, PerformanceResourceTiming, constants,
        eventLoopUtilization: (...args) => performance.eventLoopUtilization(...args),
        timerify: (fn, options) => performance.timerify(fn, options),
        createHistogram: notImplemented("createHistogram"), monitorEventLoopDelay: notImplemented("monitorEventLoopDelay"),
      };
    })(),
    console: { ...globalThis.console, Console: function Console() { return globalThis.console; } },
    timers: { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate },
    "timers/promises": {
      setTimeout: (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms)),
      setImmediate: (value) => new Promise((resolve) => setImmediate(() => resolve(value))),
    },
  };
  // node:module: createRequire gives CommonJS code in a bundle the built-in modules (esbuild's
  // idiom for ESM output: `const require = createRequire("/")`; workers have no import.meta.url).
  const builtinName = (name) => String(name).replace(/^node:/, "");
  const moduleModule = {
    builtinModules: Object.keys(modules),
    isBuiltin: (name) => Object.hasOwn(modules, builtinName(name)),
    createRequire(path) {
      const text = path instanceof URL ? path.href : path;
      if (typeof text !== "string" || !(text.startsWith("/") || text.startsWith("file:"))) {
        throw typeError("ERR_INVALID_ARG_VALUE", `The argument 'path' must be a file URL object, a file URL string, or an absolute path string. Received ${inspect(path)}`);
      }
      const require = (name) => {
        const found = modules[builtinName(name)];
        if (found === undefined) throw nodeError(Error, "MODULE_NOT_FOUND", `Cannot find module '${name}': only built-in modules can be required (bundle the others)`);
        return found;
      };
      require.resolve = (name) => {
        if (!moduleModule.isBuiltin(name)) throw nodeError(Error, "MODULE_NOT_FOUND", `Cannot find module '${name}'`);
        return `node:${builtinName(name)}`;
      };
      require.cache = Object.create(null);
      return require;
    },
  };
  modules.module = moduleModule;
  return { modules, process: processObject };
})
