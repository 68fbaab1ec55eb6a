// NANO runtime glue: the JS half of the Web APIs and the request dispatcher.
//
// Evaluated once per app inside the snapshot creator, before the app's module. The script's value
// is a function that receives the native ops object (see webapi/mod.rs) and returns the internals
// Rust calls into: register (find the app's fetch handler), dispatch (run one request) and
// fireTimer. Nothing here keeps a reference to ops on a global: tenant code cannot reach them.
(function bootstrap(ops) {
  "use strict";

  const kState = Symbol("nano.state");
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  // A global made on first read (its code compiled then: see lazyScript), then a plain value.
  // The names go to the snapshot creator, which makes those an app's source names in advance.
  const lazyGlobals = [];
  const lazyGlobal = (name, make) => {
    lazyGlobals.push(name);
    Object.defineProperty(globalThis, name, {
      get() { const value = make(); define(name, value); return value; },
      set(value) { define(name, value); },
      configurable: true,
      enumerable: false,
    });
  };

  // ---- builtins that cannot be interrupted ------------------------------------------------------
  // V8's Array builtins loop over `length` in C++ without checking for termination: on a holey
  // array or an array-like of length 2**31 (`Array.prototype.indexOf.call({length: 2**40}, 1)`,
  // `Array.from({length: 2**31})`) neither limit can end them, the worker is pinned for hours, and
  // some grow V8 tables until the process aborts. Past GUARD_LENGTH elements (more than a real
  // array's elements fit in the largest memory limit) each runs in JS instead (js/guards.js,
  // compiled on first use), where the limits reach every iteration; below it, natively.
  {
    const GUARD_LENGTH = 2 ** 25;
    let slow;
    const guards = () => (slow ??= ops.lazyScript("guards")());
    // Captured, not looked up: with context reset these run without type feedback every request.
    const { apply } = Reflect;
    const { floor } = Math;
    const toObject = Object;
    // ToLength: NaN and negatives are 0, at most 2**53 - 1 (`+` throws on a BigInt or Symbol,
    // as the builtins do).
    const lengthOf = (o) => {
      const n = +o.length;
      return n > 0 ? (n < 2 ** 53 - 1 ? floor(n) : 2 ** 53 - 1) : 0;
    };
    const proto = Array.prototype;
    const nativeSort = proto.sort;
    // The builtins, by their own names: inside each wrapper below, `indexOf` is the native one.
    const {
      indexOf, lastIndexOf, includes, forEach, some, every, find, findIndex, findLast, findLastIndex,
      reduce, reduceRight, map, filter, join, toLocaleString, reverse, copyWithin, fill, slice, splice,
      unshift, shift, sort, toSorted, toReversed, toSpliced, with: with_, flat, flatMap, concat,
    } = proto;
    const guarded = (self, name, native, args) => {
      const o = toObject(self);
      const len = lengthOf(o);
      if (len <= GUARD_LENGTH) return apply(native, self, args);
      return guards()[name](o, len, [...args], nativeSort);
    };
    // Spreadable arguments count too: `[].concat({ length: 2**31, [Symbol.isConcatSpreadable]: true })`.
    const spreadLength = (v) => {
      if (v === null || typeof v !== "object") return 0;
      const s = v[Symbol.isConcatSpreadable];
      return (s !== undefined ? s : Array.isArray(v)) ? lengthOf(v) : 0;
    };
    // Written out one by one, not made in a loop: each context deserialises these (with context
    // reset, every request), and functions whose name and `length` come from their source share
    // everything but their closure. Their parameters make each builtin's `length`.
    const methods = {
      indexOf(a) { return guarded(this, "indexOf", indexOf, arguments); },
      lastIndexOf(a) { return guarded(this, "lastIndexOf", lastIndexOf, arguments); },
      includes(a) { return guarded(this, "includes", includes, arguments); },
      forEach(a) { return guarded(this, "forEach", forEach, arguments); },
      some(a) { return guarded(this, "some", some, arguments); },
      every(a) { return guarded(this, "every", every, arguments); },
      find(a) { return guarded(this, "find", find, arguments); },
      findIndex(a) { return guarded(this, "findIndex", findIndex, arguments); },
      findLast(a) { return guarded(this, "findLast", findLast, arguments); },
      findLastIndex(a) { return guarded(this, "findLastIndex", findLastIndex, arguments); },
      reduce(a) { return guarded(this, "reduce", reduce, arguments); },
      reduceRight(a) { return guarded(this, "reduceRight", reduceRight, arguments); },
      map(a) { return guarded(this, "map", map, arguments); },
      filter(a) { return guarded(this, "filter", filter, arguments); },
      join(a) { return guarded(this, "join", join, arguments); },
      toLocaleString() { return guarded(this, "toLocaleString", toLocaleString, arguments); },
      reverse() { return guarded(this, "reverse", reverse, arguments); },
      copyWithin(a, b) { return guarded(this, "copyWithin", copyWithin, arguments); },
      fill(a) { return guarded(this, "fill", fill, arguments); },
      slice(a, b) { return guarded(this, "slice", slice, arguments); },
      splice(a, b) { return guarded(this, "splice", splice, arguments); },
      unshift(a) { return guarded(this, "unshift", unshift, arguments); },
      shift() { return guarded(this, "shift", shift, arguments); },
      sort(a) { return guarded(this, "sort", sort, arguments); },
      toSorted(a) { return guarded(this, "toSorted", toSorted, arguments); },
      toReversed() { return guarded(this, "toReversed", toReversed, arguments); },
      toSpliced(a, b) { return guarded(this, "toSpliced", toSpliced, arguments); },
      with(a, b) { return guarded(this, "with", with_, arguments); },
      flat() { return guarded(this, "flat", flat, arguments); },
      flatMap(a) { return guarded(this, "flatMap", flatMap, arguments); },
      concat(a) {
        let total = spreadLength(toObject(this));
        for (let i = 0; i < arguments.length; i++) total += spreadLength(arguments[i]);
        if (total <= GUARD_LENGTH) return apply(concat, this, arguments);
        return guards().concat(toObject(this), 0, [...arguments]);
      },
    };
    for (const name in methods) {
      Object.defineProperty(proto, name, { value: methods[name], writable: true, configurable: true, enumerable: false });
    }
    // Array.from on an array-like without an iterator.
    const nativeFrom = Array.from;
    Object.defineProperty(Array, "from", {
      value: {
        from(items, ...rest) {
          if (items !== null && items !== undefined && items[Symbol.iterator] === undefined) {
            const o = Object(items);
            const len = lengthOf(o);
            if (len > GUARD_LENGTH) return guards().from(o, len, rest, this);
          }
          return Reflect.apply(nativeFrom, this, [items, ...rest]);
        },
      }.from,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }

  // JSON.parse neither checks for termination nor keeps memory in check while it runs (on a
  // 100 MB text it runs for minutes, far past any limit). A text longer than a quarter of the
  // isolate's memory limit cannot produce a value that fits anyway: refuse it up front.
  {
    const nativeParse = JSON.parse;
    Object.defineProperty(JSON, "parse", {
      value: function parse(text, reviver) {
        const source = typeof text === "string" ? text : String(text);
        const limit = ops.memoryLimit() / 4;
        if (source.length > limit) {
          throw new RangeError(
            `JSON.parse: the text is ${source.length} characters, more than a quarter of the isolate's memory limit (limits.memory_mb) allows (${limit})`,
          );
        }
        return reviver === undefined ? nativeParse(source) : nativeParse(source, reviver);
      },
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }

  // ---- console -------------------------------------------------------------------------------
  // Arguments are formatted as Node's util.format does, as on workerd (`%s`/`%d`/`%o`
  // substitution, util.inspect's layout for objects). Plain strings take a fast path; anything
  // else builds the Node layer's small inspect tier (js/node/inspect.js) on first use.
  const LEVELS = { debug: 0, log: 1, info: 1, warn: 2, error: 3 };
  const formatArgs = (args) => {
    if (args.every((a) => typeof a === "string") && !(args.length > 0 && args[0].includes("%"))) return args.join(" ");
    return node.format(...args);
  };
  const console = {};
  // Groups indent what follows by two spaces a level; counters and timers are per context.
  let groupIndent = "";
  // One line is cut at MAX_LINE characters before it leaves JS (the node also caps what a request
  // and an app may log: see op_log).
  const MAX_LINE = 16 * 1024;
  const cut = (text, max) => (text.length > max ? `${text.slice(0, max)}… [${text.length - max} more characters cut]` : text);
  const print = (level, text) => ops.log(level, cut(groupIndent ? text.replace(/^/gm, groupIndent) : text, MAX_LINE));
  for (const [name, level] of Object.entries(LEVELS)) {
    console[name] = (...args) => print(level, formatArgs(args));
  }
  console.trace = (...args) => print(0, `Trace: ${formatArgs(args)}${new Error().stack.replace(/^Error\n/, "\n")}`);
  console.dir = (value, options) => print(1, typeof value === "string" ? `'${value}'` : node.inspect(value, options));
  console.dirxml = (...args) => console.log(...args);
  console.assert = (condition, ...args) => {
    if (condition) return;
    print(3, args.length ? `Assertion failed: ${formatArgs(args)}` : "Assertion failed");
  };
  const counts = new Map();
  console.count = (label = "default") => {
    const n = (counts.get(String(label)) ?? 0) + 1;
    counts.set(String(label), n);
    print(1, `${label}: ${n}`);
  };
  console.countReset = (label = "default") => {
    if (!counts.has(String(label))) print(2, `Count for '${label}' does not exist`);
    counts.set(String(label), 0);
  };
  const consoleTimers = new Map();
  const elapsed = (label) => `${label}: ${(ops.now() - consoleTimers.get(label)).toFixed(3)}ms`;
  console.time = (label = "default") => {
    label = String(label);
    if (consoleTimers.has(label)) return print(2, `Label '${label}' already exists for console.time()`);
    consoleTimers.set(label, ops.now());
  };
  console.timeLog = (label = "default", ...data) => {
    label = String(label);
    if (!consoleTimers.has(label)) return print(2, `No such label '${label}' for console.timeLog()`);
    print(1, [elapsed(label), ...(data.length ? [formatArgs(data)] : [])].join(" "));
  };
  console.timeEnd = (label = "default") => {
    label = String(label);
    if (!consoleTimers.has(label)) return print(2, `No such label '${label}' for console.timeEnd()`);
    print(1, elapsed(label));
    consoleTimers.delete(label);
  };
  console.group = (...label) => {
    if (label.length) console.log(...label);
    groupIndent += "  ";
  };
  console.groupCollapsed = console.group;
  console.groupEnd = () => { groupIndent = groupIndent.slice(2); };
  // A table of the rows' columns, drawn as Node draws it.
  console.table = (data, columns) => {
    if (data === null || typeof data !== "object") return console.log(data);
    const rows = data instanceof Map ? [...data.entries()].map(([k, v]) => [String(k), v]) : Object.entries(data);
    const keys = columns ?? [...new Set(rows.flatMap(([, v]) => (v !== null && typeof v === "object" ? Object.keys(v) : [])))];
    const hasValues = rows.some(([, v]) => v === null || typeof v !== "object");
    const header = ["(index)", ...keys, ...(hasValues ? ["Values"] : [])];
    const cell = (v) => (v === undefined ? "" : node.inspect(v));
    const body = rows.map(([k, v]) => [k, ...keys.map((c) => (v !== null && typeof v === "object" ? cell(v[c]) : "")), ...(hasValues ? [v !== null && typeof v === "object" ? "" : cell(v)] : [])]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)) + 2);
    const line = (l, m, r) => l + widths.map((w) => "─".repeat(w)).join(m) + r;
    const row = (cells) => "│" + cells.map((c, i) => { const pad = widths[i] - c.length; return " ".repeat(Math.floor(pad / 2)) + c + " ".repeat(Math.ceil(pad / 2)); }).join("│") + "│";
    print(1, [line("┌", "┬", "┐"), row(header), line("├", "┼", "┤"), ...body.map(row), line("└", "┴", "┘")].join("\n"));
  };
  define("console", console);

  // ---- timers and microtasks -----------------------------------------------------------------
  const timers = new Map();
  function startTimer(callback, delay, args, repeat) {
    if (typeof callback !== "function") {
      throw new TypeError("timer callback must be a function (strings are not evaluated)");
    }
    const ms = Math.max(0, Number(delay) || 0);
    const id = ops.timerStart(ms, repeat);
    // The callback runs in the async context (AsyncLocalStorage) of the code that set it.
    timers.set(id, { callback, args, repeat, frame: ops.asyncContext() });
    return id;
  }
  function clearTimer(id) {
    if (timers.delete(id)) ops.timerCancel(id);
  }
  define("setTimeout", (cb, delay, ...args) => startTimer(cb, delay, args, false));
  define("setInterval", (cb, delay, ...args) => startTimer(cb, delay, args, true));
  define("clearTimeout", clearTimer);
  define("clearInterval", clearTimer);
  define("setImmediate", (cb, ...args) => startTimer(cb, 0, args, false));
  define("clearImmediate", clearTimer);
  define("queueMicrotask", (cb) => {
    if (typeof cb !== "function") throw new TypeError("queueMicrotask expects a function");
    Promise.resolve().then(cb);
  });
  function fireTimer(id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    const previous = ops.asyncContext();
    ops.setAsyncContext(timer.frame);
    try {
      timer.callback(...timer.args);
    } catch (err) {
      console.error("uncaught exception in timer callback:", err);
    } finally {
      ops.setAsyncContext(previous);
    }
  }

  // ---- encoding ------------------------------------------------------------------------------
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") { return ops.encodeUtf8(String(input)); }
    encodeInto(source, destination) {
      if (!(destination instanceof Uint8Array)) throw new TypeError("TextEncoder.encodeInto: the destination must be a Uint8Array");
      const text = String(source);
      let read = 0, written = 0;
      // Whole code points only: stop before one that does not fit.
      for (const ch of text) {
        const bytes = ops.encodeUtf8(ch);
        if (written + bytes.length > destination.length) break;
        destination.set(bytes, written);
        written += bytes.length;
        read += ch.length;
      }
      return { read, written };
    }
  }
  // Every WHATWG encoding (encoding_rs, webapi/codec.rs). A one-shot UTF-8 decode takes the
  // fast path; a streaming decode keeps a native decoder, which holds a split multi-byte
  // sequence until its rest arrives, until a call without {stream: true} ends it.
  class TextDecoder {
    #encoding; #fatal; #ignoreBOM; #codec = 0;
    constructor(label = "utf-8", options = {}) {
      const name = ops.encodingName(String(label));
      if (name === undefined) throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (any WHATWG encoding label is)`);
      this.#encoding = name;
      this.#fatal = Boolean(options?.fatal);
      this.#ignoreBOM = Boolean(options?.ignoreBOM);
    }
    get encoding() { return this.#encoding; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input = undefined, options = undefined) {
      const stream = Boolean(options?.stream);
      const bytes = input === undefined ? new Uint8Array(0) : toBytes(input, "TextDecoder.decode");
      if (this.#codec === 0) {
        if (!stream && this.#encoding === "utf-8") return ops.decodeUtf8(bytes, this.#fatal, this.#ignoreBOM);
        this.#codec = ops.codecOpen("text", this.#encoding, this.#fatal, this.#ignoreBOM);
      }
      const codec = this.#codec;
      if (!stream) this.#codec = 0;
      try {
        return ops.textDecode(codec, bytes, !stream);
      } catch (err) {
        this.#codec = 0;
        throw err;
      }
    }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);

  function toBytes(input, what) {
    if (input instanceof Uint8Array) return input;
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    throw new TypeError(`${what}: expected an ArrayBuffer or a view of one`);
  }
  // Feeds `bytes` to a compression codec (webapi/codec.rs) in slices, so the CPU limit can step
  // in between calls and a decompressing call stays within codec.rs's INFLATE_SLICE; answers
  // what came out. CompressionStream (extras.js) and node:zlib (node/rest.js) both use it.
  const feedCodec = (codec, kind, bytes) => {
    const slice = kind === "decompress" ? 4096 : 65536;
    const out = [];
    for (let i = 0; i < bytes.length; i += slice) {
      const part = ops.compressPush(codec, bytes.subarray(i, i + slice));
      if (part.length) out.push(part);
    }
    return out;
  };


  // ---- DOMException, events, abort --------------------------------------------------------------
  const DOM_CODES = { IndexSizeError: 1, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
    SyntaxError: 12, InvalidCharacterError: 5, NetworkError: 19, AbortError: 20, TimeoutError: 23,
    QuotaExceededError: 22, DataCloneError: 25 };
  class DOMException extends Error {
    #name;
    constructor(message = "", name = "Error") {
      super(String(message));
      this.#name = String(name);
    }
    get name() { return this.#name; }
    get code() { return DOM_CODES[this.#name] ?? 0; }
  }
  define("DOMException", DOMException);

  class Event {
    #type; #cancelable; #defaultPrevented = false; #stopped = false; #target = null; #timeStamp;
    constructor(type, init = {}) {
      if (arguments.length === 0) throw new TypeError("Event: the type argument is required");
      this.#type = String(type);
      this.#cancelable = Boolean(init.cancelable);
      this.#timeStamp = ops.now();
    }
    get type() { return this.#type; }
    get target() { return this.#target; }
    get currentTarget() { return this.#target; }
    get cancelable() { return this.#cancelable; }
    get defaultPrevented() { return this.#defaultPrevented; }
    get timeStamp() { return this.#timeStamp; }
    preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
    stopImmediatePropagation() { this.#stopped = true; }
    stopPropagation() {}
    static [kState](event, target) { event.#target = target; return () => event.#stopped; }
  }
  class EventTarget {
    #listeners = new Map();
    addEventListener(type, listener, options = {}) {
      if (listener === null || listener === undefined) return;
      const list = this.#listeners.get(type) ?? [];
      if (list.some((l) => l.listener === listener)) return;
      const once = typeof options === "object" && Boolean(options.once);
      const signal = typeof options === "object" ? options.signal : undefined;
      if (signal?.aborted) return;
      list.push({ listener, once });
      this.#listeners.set(type, list);
      signal?.addEventListener("abort", () => this.removeEventListener(type, listener));
    }
    removeEventListener(type, listener) {
      const list = this.#listeners.get(type);
      if (list) this.#listeners.set(type, list.filter((l) => l.listener !== listener));
    }
    dispatchEvent(event) {
      if (!(event instanceof Event)) throw new TypeError("dispatchEvent: expected an Event");
      const stopped = Event[kState](event, this);
      for (const entry of [...(this.#listeners.get(event.type) ?? [])]) {
        if (entry.once) this.removeEventListener(event.type, entry.listener);
        try {
          if (typeof entry.listener === "function") entry.listener.call(this, event);
          else entry.listener.handleEvent(event);
        } catch (err) {
          console.error("uncaught exception in an event listener:", err);
        }
        if (stopped()) break;
      }
      return !event.defaultPrevented;
    }
  }
  define("Event", Event);

  class CustomEvent extends Event {
    #detail;
    constructor(type, init = {}) {
      super(type, init);
      // workerd leaves an absent detail undefined (the DOM standard says null).
      this.#detail = init?.detail;
    }
    get detail() { return this.#detail; }
  }
  define("CustomEvent", CustomEvent);
  define("EventTarget", EventTarget);

  class AbortSignal extends EventTarget {
    #aborted = false; #reason = undefined;
    onabort = null;
    constructor(key) {
      super();
      if (key !== kState) throw new TypeError("AbortSignal cannot be constructed; use AbortController");
    }
    get aborted() { return this.#aborted; }
    get reason() { return this.#reason; }
    throwIfAborted() { if (this.#aborted) throw this.#reason; }
    static [kState](signal, reason) {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
      const event = new Event("abort");
      if (typeof signal.onabort === "function") signal.onabort.call(signal, event);
      signal.dispatchEvent(event);
    }
    static abort(reason) {
      const signal = new AbortSignal(kState);
      AbortSignal[kState](signal, reason);
      return signal;
    }
    static timeout(ms) {
      const signal = new AbortSignal(kState);
      setTimeout(() => AbortSignal[kState](signal, new DOMException("The operation timed out", "TimeoutError")), ms);
      return signal;
    }
    static any(signals) {
      const signal = new AbortSignal(kState);
      for (const s of signals) {
        if (s.aborted) { AbortSignal[kState](signal, s.reason); break; }
        s.addEventListener("abort", () => AbortSignal[kState](signal, s.reason), { once: true });
      }
      return signal;
    }
  }
  class AbortController {
    #signal = new AbortSignal(kState);
    get signal() { return this.#signal; }
    abort(reason) { AbortSignal[kState](this.#signal, reason); }
  }
  define("AbortSignal", AbortSignal);
  define("AbortController", AbortController);

  // ---- base64 ------------------------------------------------------------------------------------
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  define("btoa", (data) => {
    const s = String(data);
    let out = "";
    for (let i = 0; i < s.length; i += 3) {
      const codes = [s.charCodeAt(i), s.charCodeAt(i + 1), s.charCodeAt(i + 2)];
      for (const c of codes) {
        if (c > 255) throw new DOMException("btoa: the string contains characters outside Latin-1", "InvalidCharacterError");
      }
      const [a, b, c] = codes;
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < s.length ? B64[n & 63] : "=");
    }
    return out;
  });
  define("atob", (data) => {
    let s = String(data).replace(/[\t\n\f\r ]/g, "");
    if (s.length % 4 === 0) s = s.replace(/={1,2}$/, "");
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) {
      throw new DOMException("atob: the string is not correctly encoded base64", "InvalidCharacterError");
    }
    let out = "";
    let bits = 0, value = 0;
    for (const ch of s) {
      value = (value << 6) | B64.indexOf(ch);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += String.fromCharCode((value >> bits) & 255);
      }
    }
    return out;
  });

  // ---- structuredClone ---------------------------------------------------------------------------
  define("structuredClone", (value, options = undefined) => {
    const seen = new Map();
    // Transferred buffers move (the source is detached); a buffer already detached arrives
    // empty, as on workerd.
    for (const buffer of options?.transfer ?? []) {
      if (!(buffer instanceof ArrayBuffer)) throw new DOMException("structuredClone: only ArrayBuffers can be transferred", "DataCloneError");
      seen.set(buffer, buffer.detached ? new ArrayBuffer(0) : buffer.transfer());
    }
    const clone = (v) => {
      if (v === null || (typeof v !== "object" && typeof v !== "function" && typeof v !== "symbol")) return v;
      if (typeof v === "function" || typeof v === "symbol") {
        throw new DOMException(`structuredClone: ${typeof v === "function" ? "a function" : "a symbol"} could not be cloned`, "DataCloneError");
      }
      if (seen.has(v)) return seen.get(v);
      let out;
      if (Array.isArray(v)) {
        out = new Array(v.length);
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) {
        const buffer = clone(v.buffer);
        out = v instanceof DataView ? new DataView(buffer, v.byteOffset, v.byteLength) : new v.constructor(buffer, v.byteOffset, v.length);
      } else if (v instanceof Map) {
        out = new Map();
        seen.set(v, out);
        for (const [k, val] of v) out.set(clone(k), clone(val));
        return out;
      } else if (v instanceof Set) {
        out = new Set();
        seen.set(v, out);
        for (const k of v) out.add(clone(k));
        return out;
      } else if (v instanceof Error) {
        const Ctor = { EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError }[v.name] ?? Error;
        out = new Ctor(v.message);
        if (v.stack !== undefined) out.stack = v.stack;
      } else if (v instanceof Boolean || v instanceof Number || v instanceof String) {
        out = Object(v.valueOf());
      } else {
        // Any other object (a class instance too) arrives as a plain object of its own
        // enumerable properties, as V8's serializer makes it on workerd.
        out = {};
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  });

  // ---- globals compiled on first use ---------------------------------------------------------
  // Compression streams, URLPattern, MessageChannel and the queuing strategies live in
  // js/extras.js, compiled into a context only when the context first reads one of them (the
  // lazyScript op): a reset-on request deserialises its whole context, so what an app does not
  // use must not be in it. An app whose source names one gets them in its snapshot instead.
  let extras = null;
  const extra = (name) => (extras ??= ops.lazyScript("extras")(ops, { kState, toBytes, feedCodec }))[name];
  for (const name of ["CompressionStream", "DecompressionStream", "URLPattern", "MessageEvent", "MessagePort",
    "MessageChannel", "ByteLengthQueuingStrategy", "CountQueuingStrategy"]) {
    lazyGlobal(name, () => extra(name));
  }

  define("scheduler", Object.freeze({
    wait(ms, options = {}) {
      const signal = options?.signal;
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const id = setTimeout(resolve, ms);
        signal?.addEventListener("abort", () => { clearTimeout(id); reject(signal.reason); }, { once: true });
      });
    },
  }));

  // ---- performance, navigator --------------------------------------------------------------------
  const performance = {
    now: () => ops.now(),
    get timeOrigin() { return Date.now() - ops.now(); },
    toJSON() { return { timeOrigin: this.timeOrigin }; },
  };
  define("performance", Object.freeze(performance));
  define("navigator", Object.freeze({ userAgent: "NANO/0.1", hardwareConcurrency: 1, language: "en" }));

  // ---- crypto ------------------------------------------------------------------------------------
  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
  const crypto = {
    getRandomValues(array) {
      if (!INTEGER_ARRAYS.some((C) => array instanceof C)) {
        throw new DOMException("crypto.getRandomValues: expected an integer TypedArray", "TypeMismatchError");
      }
      if (array.byteLength > 65536) {
        throw new DOMException(`crypto.getRandomValues: ${array.byteLength} bytes asked, at most 65536 allowed`, "QuotaExceededError");
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
  const methods = (target, source) => {
    for (const [name, value] of Object.entries(source)) {
      Object.defineProperty(target, name, { value, writable: true, configurable: true, enumerable: true });
    }
  };
  methods(Crypto.prototype, crypto);
  let webCrypto;
  const subtleTier = () => (webCrypto ??= ops.lazyScript("subtle")(ops, { kState, toBytes, B64, methods }));
  Object.defineProperty(Crypto.prototype, "subtle", {
    get: Object.getOwnPropertyDescriptor({ get subtle() { return subtleTier().subtle; } }, "subtle").get,
    configurable: true,
    enumerable: true,
  });
  define("Crypto", Crypto);
  define("crypto", Object.freeze(new Crypto(kState)));
  lazyGlobal("SubtleCrypto", () => subtleTier().SubtleCrypto);
  lazyGlobal("CryptoKey", () => subtleTier().CryptoKey);
  // An app whose source names it gets it in its snapshot (see lazyGlobals).
  lazyGlobals.push("crypto.subtle");

  // ---- URL -----------------------------------------------------------------------------------
  class URLSearchParams {
    #list = []; #url = null;
    constructor(init = "") {
      if (typeof init === "object" && init !== null) {
        const pairs = Symbol.iterator in init ? init : Object.entries(init);
        for (const pair of pairs) {
          const [k, v] = pair;
          if (pair.length !== 2) throw new TypeError("URLSearchParams: each pair must have two items");
          this.#list.push([String(k), String(v)]);
        }
      } else {
        this.#parse(String(init));
      }
    }
    #parse(text) {
      this.#list = [];
      const query = text.startsWith("?") ? text.slice(1) : text;
      for (const part of query.split("&")) {
        if (!part) continue;
        const eq = part.indexOf("=");
        const name = eq < 0 ? part : part.slice(0, eq);
        const value = eq < 0 ? "" : part.slice(eq + 1);
        this.#list.push([decodeForm(name), decodeForm(value)]);
      }
    }
    static [kState](params, url, search) { params.#url = url; params.#parse(search); }
    #update() { if (this.#url) this.#url[kState].setSearch(this.toString()); }
    append(name, value) { this.#list.push([String(name), String(value)]); this.#update(); }
    // An entry of `name` (and of `value`, when given): has() and delete() take both.
    static #matches(name, value) {
      const n = String(name);
      const v = value === undefined ? undefined : String(value);
      return ([k, val]) => k === n && (v === undefined || val === v);
    }
    delete(name, value = undefined) {
      const matches = URLSearchParams.#matches(name, value);
      this.#list = this.#list.filter((entry) => !matches(entry));
      this.#update();
    }
    get(name) { const e = this.#list.find(([k]) => k === String(name)); return e ? e[1] : null; }
    getAll(name) { return this.#list.filter(([k]) => k === String(name)).map(([, v]) => v); }
    has(name, value = undefined) { return this.#list.some(URLSearchParams.#matches(name, value)); }
    set(name, value) {
      const n = String(name);
      const i = this.#list.findIndex(([k]) => k === n);
      if (i < 0) this.#list.push([n, String(value)]);
      else {
        this.#list[i][1] = String(value);
        this.#list = this.#list.filter(([k], j) => k !== n || j === i);
      }
      this.#update();
    }
    sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#update(); }
    get size() { return this.#list.length; }
    forEach(cb, thisArg) { for (const [k, v] of this.#list) cb.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this.#list) yield [k, v]; }
    *keys() { for (const [k] of this.#list) yield k; }
    *values() { for (const [, v] of this.#list) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this.#list.map(([k, v]) => `${encodeForm(k)}=${encodeForm(v)}`).join("&"); }
  }
  function decodeForm(s) {
    try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch { return s; }
  }
  function encodeForm(s) {
    return encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  }

  // Parsing is WHATWG-exact because it is done by the `url` crate (ops.urlParse / ops.urlSet),
  // which return [href, protocol, username, password, host, hostname, port, pathname, search,
  // hash, origin].
  class URL {
    #parts; #params;
    constructor(url, base) {
      this.#parts = ops.urlParse(String(url), base === undefined ? undefined : String(base));
      this.#params = new URLSearchParams();
      URLSearchParams[kState](this.#params, this, this.#parts[8]);
    }
    static canParse(url, base) {
      try { new URL(url, base); return true; } catch { return false; }
    }
    static parse(url, base) {
      try { return new URL(url, base); } catch { return null; }
    }
    get [kState]() { return { setSearch: (s) => this.#set("search", s) }; }
    #set(part, value) {
      this.#parts = ops.urlSet(this.#parts[0], part, String(value));
      if (part !== "search") URLSearchParams[kState](this.#params, this, this.#parts[8]);
    }
    get href() { return this.#parts[0]; }
    set href(v) { this.#set("href", v); URLSearchParams[kState](this.#params, this, this.#parts[8]); }
    get protocol() { return this.#parts[1]; }
    set protocol(v) { this.#set("protocol", v); }
    get username() { return this.#parts[2]; }
    set username(v) { this.#set("username", v); }
    get password() { return this.#parts[3]; }
    set password(v) { this.#set("password", v); }
    get host() { return this.#parts[4]; }
    set host(v) { this.#set("host", v); }
    get hostname() { return this.#parts[5]; }
    set hostname(v) { this.#set("hostname", v); }
    get port() { return this.#parts[6]; }
    set port(v) { this.#set("port", v); }
    get pathname() { return this.#parts[7]; }
    set pathname(v) { this.#set("pathname", v); }
    get search() { return this.#parts[8]; }
    set search(v) { this.#set("search", v); URLSearchParams[kState](this.#params, this, this.#parts[8]); }
    get hash() { return this.#parts[9]; }
    set hash(v) { this.#set("hash", v); }
    get origin() { return this.#parts[10]; }
    get searchParams() { return this.#params; }
    toString() { return this.#parts[0]; }
    toJSON() { return this.#parts[0]; }
  }
  define("URL", URL);
  define("URLSearchParams", URLSearchParams);

  // ---- Headers -------------------------------------------------------------------------------
  // Plain loops rather than regular expressions: with context reset every request runs in a
  // fresh context, where each regular expression literal is compiled again on first use.
  const TOKEN_PUNCTUATION = "!#$%&'*+-.^_`|~";
  function isToken(s) {
    if (s.length === 0) return false;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const alnum = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
      if (!alnum && (c > 126 || !TOKEN_PUNCTUATION.includes(s[i]))) return false;
    }
    return true;
  }
  const isHttpSpace = (c) => c === 32 || c === 9 || c === 10 || c === 13;
  function normalizeName(name) {
    const n = String(name);
    if (!isToken(n)) throw new TypeError(`Headers: invalid header name "${n}"`);
    return n.toLowerCase();
  }
  function normalizeValue(value) {
    const raw = String(value);
    let start = 0, end = raw.length;
    while (start < end && isHttpSpace(raw.charCodeAt(start))) start++;
    while (end > start && isHttpSpace(raw.charCodeAt(end - 1))) end--;
    const v = start === 0 && end === raw.length ? raw : raw.slice(start, end);
    if (v.includes("\0") || v.includes("\r") || v.includes("\n")) {
      throw new TypeError(`Headers: invalid header value ${JSON.stringify(v)}`);
    }
    return v;
  }
  class Headers {
    #list = []; // [lower-case name, value] in insertion order
    #immutable = false;
    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        this.#list = init.#list.map(([k, v]) => [k, v]);
      } else if (typeof init === "object" && Symbol.iterator in init) {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
          this.append(p[0], p[1]);
        }
      } else if (typeof init === "object") {
        for (const key of Object.keys(init)) this.append(key, init[key]);
      } else {
        throw new TypeError("Headers: init must be an object, an iterable of pairs or a Headers");
      }
    }
    static [kState](headers) { return headers.#list; }
    // The headers of an incoming request, of Response.redirect() and of a fetched response
    // cannot change, as on workerd (copy them with new Headers(...) or new Request(...)).
    static freeze(headers) { headers.#immutable = true; return headers; }
    #mutable() { if (this.#immutable) throw new TypeError("Can't modify immutable headers."); }
    append(name, value) { this.#mutable(); this.#list.push([normalizeName(name), normalizeValue(value)]); }
    delete(name) { this.#mutable(); const n = normalizeName(name); this.#list = this.#list.filter(([k]) => k !== n); }
    get(name) {
      const n = normalizeName(name);
      const values = this.#list.filter(([k]) => k === n).map(([, v]) => v);
      return values.length === 0 ? null : values.join(", ");
    }
    getSetCookie() { return this.#list.filter(([k]) => k === "set-cookie").map(([, v]) => v); }
    has(name) { const n = normalizeName(name); return this.#list.some(([k]) => k === n); }
    set(name, value) {
      this.#mutable();
      const n = normalizeName(name);
      const v = normalizeValue(value);
      const i = this.#list.findIndex(([k]) => k === n);
      if (i < 0) { this.#list.push([n, v]); return; }
      this.#list[i] = [n, v];
      this.#list = this.#list.filter(([k], j) => k !== n || j === i);
    }
    // Iteration is sorted by name with values combined, except set-cookie (Fetch spec).
    *entries() {
      const names = [...new Set(this.#list.map(([k]) => k))].sort();
      for (const name of names) {
        if (name === "set-cookie") for (const v of this.getSetCookie()) yield [name, v];
        else yield [name, this.get(name)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(cb, thisArg) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
  }
  define("Headers", Headers);

  // ---- Blob, File, FormData ----------------------------------------------------------------------
  const kBytes = Symbol("nano.blob.bytes");
  const partBytes = (part) => {
    if (part instanceof Blob) return part[kBytes];
    if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) return toBytes(part, "Blob").slice();
    return new TextEncoder().encode(String(part));
  };
  class Blob {
    constructor(parts = [], options = {}) {
      const chunks = [...parts].map(partBytes);
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const c of chunks) { out.set(c, offset); offset += c.length; }
      this[kBytes] = out;
      const type = String(options?.type ?? "");
      this.type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : "";
    }
    get size() { return this[kBytes].length; }
    async text() { return new TextDecoder().decode(this[kBytes]); }
    async arrayBuffer() { return this[kBytes].slice().buffer; }
    async bytes() { return this[kBytes].slice(); }
    slice(start = 0, end = this.size, type = "") {
      const blob = new Blob([], { type });
      blob[kBytes] = this[kBytes].slice(start, end);
      return blob;
    }
    stream() {
      // A byte stream (readable with a BYOB reader too); enqueue copies the bytes.
      const bytes = this[kBytes];
      return new ReadableStream({ type: "bytes", start(c) { if (bytes.byteLength > 0) c.enqueue(bytes); c.close(); } });
    }
    get [Symbol.toStringTag]() { return "Blob"; }
  }
  class File extends Blob {
    constructor(parts, name, options = {}) {
      if (arguments.length < 2) throw new TypeError("File: a name is required");
      super(parts, options);
      this.name = String(name);
      this.lastModified = options.lastModified === undefined ? Date.now() : Number(options.lastModified);
    }
    get [Symbol.toStringTag]() { return "File"; }
  }
  define("Blob", Blob);
  define("File", File);

  class FormData {
    #entries = [];
    constructor(form) {
      if (form !== undefined) throw new TypeError("FormData: building from a form element is not supported");
    }
    static #value(value, filename) {
      if (value instanceof Blob) {
        if (value instanceof File && filename === undefined) return value;
        return new File([value], filename ?? (value instanceof File ? value.name : "blob"), { type: value.type });
      }
      return String(value);
    }
    append(name, value, filename) { this.#entries.push([String(name), FormData.#value(value, filename)]); }
    set(name, value, filename) {
      const n = String(name);
      const i = this.#entries.findIndex(([k]) => k === n);
      const entry = [n, FormData.#value(value, filename)];
      if (i < 0) { this.#entries.push(entry); return; }
      this.#entries[i] = entry;
      this.#entries = this.#entries.filter(([k], j) => k !== n || j === i);
    }
    get(name) { return this.#entries.find(([k]) => k === String(name))?.[1] ?? null; }
    getAll(name) { return this.#entries.filter(([k]) => k === String(name)).map(([, v]) => v); }
    has(name) { return this.#entries.some(([k]) => k === String(name)); }
    delete(name) { this.#entries = this.#entries.filter(([k]) => k !== String(name)); }
    *entries() { yield* this.#entries.map(([k, v]) => [k, v]); }
    *keys() { for (const [k] of this.#entries) yield k; }
    *values() { for (const [, v] of this.#entries) yield v; }
    forEach(cb, thisArg) { for (const [k, v] of this.#entries) cb.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
  }
  define("FormData", FormData);

  // multipart/form-data: encode a FormData, and parse a body back.
  function encodeMultipart(form) {
    const boundary = `----nano${ops.randomBytes(12).reduce((s, b) => s + b.toString(16).padStart(2, "0"), "")}`;
    const enc = new TextEncoder();
    const escape = (s) => s.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
    const parts = [];
    for (const [name, value] of form) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escape(name)}"`;
      if (value instanceof File) {
        head += `; filename="${escape(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}`;
        parts.push(enc.encode(`${head}\r\n\r\n`), value[kBytes], enc.encode("\r\n"));
      } else {
        parts.push(enc.encode(`${head}\r\n\r\n${value}\r\n`));
      }
    }
    parts.push(enc.encode(`--${boundary}--\r\n`));
    return { bytes: new Blob(parts)[kBytes], type: `multipart/form-data; boundary=${boundary}` };
  }
  function parseFormData(bytes, contentType) {
    const form = new FormData();
    const type = (contentType ?? "").toLowerCase();
    if (type.startsWith("application/x-www-form-urlencoded")) {
      for (const [k, v] of new URLSearchParams(new TextDecoder().decode(bytes))) form.append(k, v);
      return form;
    }
    const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
    if (!type.startsWith("multipart/form-data") || !match) {
      throw new TypeError("formData(): the body is neither multipart/form-data (with a boundary) nor application/x-www-form-urlencoded");
    }
    const boundary = new TextEncoder().encode(`--${match[1] ?? match[2]}`);
    const find = (from, needle) => {
      outer: for (let i = from; i <= bytes.length - needle.length; i++) {
        for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
        return i;
      }
      return -1;
    };
    let at = find(0, boundary);
    while (at >= 0) {
      const start = at + boundary.length;
      if (bytes[start] === 45 && bytes[start + 1] === 45) break; // "--": the last boundary
      const next = find(start, boundary);
      if (next < 0) throw new TypeError("formData(): the multipart body is truncated");
      const part = bytes.subarray(start + 2, next - 2); // skip CRLF after the boundary and before the next
      let headEnd = -1;
      for (let i = 0; i + 3 < part.length; i++) {
        if (part[i] === 13 && part[i + 1] === 10 && part[i + 2] === 13 && part[i + 3] === 10) { headEnd = i; break; }
      }
      if (headEnd < 0) throw new TypeError("formData(): a multipart part has no header end");
      const head = new TextDecoder().decode(part.subarray(0, headEnd));
      const content = part.subarray(headEnd + 4);
      const disposition = /content-disposition:[^\r\n]*/i.exec(head)?.[0] ?? "";
      const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
      const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
      const ctype = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1] ?? "";
      if (name !== undefined) {
        if (filename !== undefined) form.append(name, new File([content], filename, { type: ctype }));
        else form.append(name, new TextDecoder().decode(content));
      }
      at = next;
    }
    return form;
  }

  // ---- Body, Request, Response ---------------------------------------------------------------
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  function extractBody(body) {
    if (body === undefined || body === null) return { bytes: null, type: null };
    if (body instanceof ReadableStream) {
      if (body.locked || body._disturbed) throw new TypeError("body: the ReadableStream is locked or already read");
      return { bytes: null, stream: body, type: null };
    }
    if (typeof body === "string") return { bytes: encoder.encode(body), type: "text/plain;charset=UTF-8" };
    if (body instanceof Blob) return { bytes: body[kBytes].slice(), type: body.type || null };
    if (body instanceof FormData) return encodeMultipart(body);
    if (body instanceof URLSearchParams) {
      return { bytes: encoder.encode(body.toString()), type: "application/x-www-form-urlencoded;charset=UTF-8" };
    }
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return { bytes: toBytes(body, "body").slice(), type: null };
    return { bytes: encoder.encode(String(body)), type: "text/plain;charset=UTF-8" };
  }
  // A body stream must yield bytes: workerd refuses strings (encode them, e.g. with a
  // TextEncoderStream).
  const bodyChunk = (chunk) => {
    if (chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return toBytes(chunk, "body chunk");
    throw new TypeError("This ReadableStream did not return bytes: a body stream must yield ArrayBuffers or views of them (pipe strings through a TextEncoderStream)");
  };
  // Reads a stream of byte chunks to one Uint8Array.
  async function readAll(stream) {
    const chunks = [];
    let length = 0;
    for await (const chunk of stream) {
      const bytes = bodyChunk(chunk);
      chunks.push(bytes);
      length += bytes.length;
    }
    const out = new Uint8Array(length);
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
  const BodyMixin = (Base) => class extends Base {
    get bodyUsed() { return this[kState].used || Boolean(this[kState].stream?._disturbed); }
    // The body as a stream: the app's own, or one chunk holding the bytes (made once).
    get body() {
      const state = this[kState];
      if (state.stream) return state.stream;
      if (state.bytes === null) return null;
      const bytes = state.bytes;
      // A byte stream, as on Workers (readable with a BYOB reader too); enqueue copies.
      state.stream = new ReadableStream({
        type: "bytes",
        start(controller) {
          if (bytes.byteLength > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
      return state.stream;
    }
    async #take(what) {
      const state = this[kState];
      if (this.bodyUsed) throw new TypeError(`${what}: body has already been read`);
      state.used = true;
      if (state.stream) return readAll(state.stream);
      return state.bytes ?? new Uint8Array(0);
    }
    async arrayBuffer() {
      const b = await this.#take("arrayBuffer()");
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    }
    async bytes() { return (await this.#take("bytes()")).slice(); }
    async text() { return decoder.decode(await this.#take("text()")); }
    async json() { return JSON.parse(await this.text()); }
    async blob() {
      const bytes = await this.#take("blob()");
      return new Blob([bytes], { type: this.headers.get("content-type") ?? "" });
    }
    async formData() {
      return parseFormData(await this.#take("formData()"), this.headers.get("content-type"));
    }
  };

  const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);
  const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
  class Response extends BodyMixin(Object) {
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Response: status ${init.status} is not in the range 200 to 599`);
      }
      const { bytes, stream = null, type } = extractBody(body);
      if ((bytes !== null || stream !== null) && NULL_BODY_STATUS.has(status)) {
        throw new TypeError(`Response: a ${status} response cannot have a body`);
      }
      const headers = new Headers(init.headers);
      if (type && !headers.has("content-type")) headers.set("content-type", type);
      this[kState] = { status, statusText: String(init.statusText ?? ""), headers, bytes, stream, used: false, type: "default", url: "" };
    }
    static json(data, init = {}) {
      // workerd answers a value JSON cannot express (undefined, a function) with "undefined".
      const text = String(JSON.stringify(data));
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(text, { ...init, headers });
    }
    static redirect(url, status = 302) {
      if (!REDIRECT_STATUS.has(status)) throw new RangeError(`Response.redirect: ${status} is not a redirect status`);
      const response = new Response(null, { status, headers: { location: new URL(url).href } });
      Headers.freeze(response[kState].headers);
      return response;
    }
    static error() {
      const r = new Response(null, { status: 200 });
      r[kState].status = 0;
      r[kState].type = "error";
      return r;
    }
    get status() { return this[kState].status; }
    get statusText() { return this[kState].statusText; }
    get ok() { return this[kState].status >= 200 && this[kState].status < 300; }
    get headers() { return this[kState].headers; }
    get redirected() { return Boolean(this[kState].redirected); }
    get type() { return this[kState].type; }
    get url() { return this[kState].url; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Response.clone: body has already been read");
      const s = this[kState];
      let body = s.bytes === null ? null : s.bytes.slice();
      if (s.stream) {
        const [mine, theirs] = s.stream.tee();
        s.stream = mine;
        body = theirs;
      }
      const copy = new Response(body, { status: s.status, statusText: s.statusText, headers: s.headers });
      copy[kState].status = s.status;
      return copy;
    }
  }
  define("Response", Response);

  // Methods the Fetch spec upper-cases whatever their case (others are kept as written). No
  // non-ASCII character lower-cases into these names, so the lookup matches the spec's.
  const NORMALIZED_METHODS = new Map(
    ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].map((m) => [m.toLowerCase(), m]),
  );
  const REDIRECT_MODES = ["follow", "manual", "error"];
  class Request extends BodyMixin(Object) {
    constructor(input, init = {}) {
      super();
      let url, method = "GET", headers, bytes = null, signal = null, redirect = "follow";
      if (input instanceof Request) {
        const s = input[kState];
        url = s.url; method = s.method; headers = new Headers(s.headers);
        bytes = s.bytes === null ? null : s.bytes.slice();
        signal = s.signal; redirect = s.redirect;
      } else {
        url = new URL(String(input)).href;
        headers = new Headers();
      }
      if (init.method !== undefined) {
        const m = String(init.method);
        method = NORMALIZED_METHODS.get(m.toLowerCase()) ?? m;
      }
      if (init.headers !== undefined) headers = new Headers(init.headers);
      let type = null;
      let stream = null;
      if (init.body !== undefined) ({ bytes, stream = null, type } = extractBody(init.body));
      if ((bytes !== null || stream !== null) && (method === "GET" || method === "HEAD")) {
        throw new TypeError(`Request: a ${method} request cannot have a body`);
      }
      if (type && !headers.has("content-type")) headers.set("content-type", type);
      if (init.signal !== undefined && init.signal !== null && !(init.signal instanceof AbortSignal)) {
        throw new TypeError("Request: signal must be an AbortSignal");
      }
      signal = init.signal ?? signal ?? new AbortSignal(kState);
      if (init.redirect !== undefined) redirect = String(init.redirect);
      if (!REDIRECT_MODES.includes(redirect)) {
        throw new TypeError(`Request: redirect must be "follow", "manual" or "error", not ${JSON.stringify(redirect)}`);
      }
      this[kState] = { url, method, headers, bytes, stream, used: false, signal, redirect };
    }
    get url() { return this[kState].url; }
    get method() { return this[kState].method; }
    get headers() { return this[kState].headers; }
    get signal() { return this[kState].signal; }
    get redirect() { return this[kState].redirect; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Request.clone: body has already been read");
      const s = this[kState];
      const copy = new Request(this);
      // A streamed body is teed: both requests can read it whole.
      if (s.stream) [s.stream, copy[kState].stream] = s.stream.tee();
      return copy;
    }
  }
  define("Request", Request);

  // ---- fetch (subrequests) -----------------------------------------------------------------------
  const pendingFetches = new Map();
  async function fetch(input, init = undefined) {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const { signal, redirect } = request[kState];
    signal.throwIfAborted();
    const flat = [];
    for (const [k, v] of Headers[kState](request.headers)) flat.push(k, v);
    const id = ops.fetchStart(request.method, request.url, flat, request[kState].bytes, redirect);
    return new Promise((resolve, reject) => {
      pendingFetches.set(id, { resolve, reject });
      signal.addEventListener("abort", () => {
        if (pendingFetches.delete(id)) reject(signal.reason);
      }, { once: true });
    });
  }
  function fetchDone(id, ok, ...rest) {
    const pending = pendingFetches.get(id);
    if (!pending) return;
    pendingFetches.delete(id);
    if (!ok) {
      pending.reject(new TypeError(rest[0]));
      return;
    }
    const [status, statusText, flat, body, url, redirected] = rest;
    const headers = new Headers();
    const list = Headers[kState](headers);
    for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
    const nullBody = NULL_BODY_STATUS.has(status) || status < 200;
    const response = new Response(nullBody ? null : body, { status: status < 200 ? 200 : status, statusText, headers });
    response[kState].status = status;
    response[kState].url = url;
    response[kState].redirected = redirected;
    Headers.freeze(headers);
    pending.resolve(response);
  }
  define("fetch", fetch);

  // ---- Node compatibility (js/node/) -------------------------------------------------------------
  // `import ... from "node:x"` compiles to a module that reads the namespace through
  // __nano_builtin while the app's modules evaluate (isolate/modules.rs); register() removes it.
  // The layer is three scripts (webapi/js/node/), each compiled into a context only when the
  // context first needs it (the lazyScript op): a reset-on request deserialises its whole context,
  // so code an app does not use must not be in it. inspect (console formats with it), buffer,
  // and the rest (process and the node: modules), which builds on the other two.
  const tiers = {};
  let requestEnv = {};
  const tier = (name, ...args) => (tiers[name] ??= ops.lazyScript(name)(...args));
  const inspection = () => tier("inspect");
  const bufferTier = () => tier("buffer", ops);
  const restTier = () => {
    if (tiers.rest === undefined) Object.assign(tier("rest", ops, bufferTier(), inspection(), { feedCodec }).process.env, requestEnv);
    return tiers.rest;
  };
  const node = {
    module: (name) => (name === "buffer" ? bufferTier().bufferModule : restTier().modules[name]),
    format: (...args) => inspection().format(...args),
    inspect: (value, options) => inspection().inspect(value, options),
  };
  lazyGlobal("Buffer", () => bufferTier().Buffer);
  lazyGlobal("process", () => restTier().process);
  define("global", globalThis);
  define("self", globalThis);
  define("__nano_builtin", (name) => node.module(name));

  // ---- WebAssembly.instantiate -----------------------------------------------------------------
  // V8 instantiates asynchronously inside one of its own tasks, where a module's start function
  // would run outside any request's CPU budget. Compile asynchronously (V8's background threads),
  // then instantiate in a promise reaction: the start function runs in the request's microtasks,
  // under its limits. V8 adds the WebAssembly global to each context after the snapshot, so the
  // first request in a context puts an accessor in its place, which installs these wrappers on
  // first use: with context reset most requests never touch WebAssembly, and pay one property
  // definition instead of the wrappers.
  let wasmState = 0; // 0: not yet seen in this context, 1: guarded on first use, 2: guarded
  let nativeWasm;
  const guardedWasm = () => {
    if (wasmState !== 2) guardWasm(nativeWasm);
    return nativeWasm;
  };
  // One descriptor for every context's first request: installing it makes no closures.
  const wasmOnFirstUse = {
    get() {
      define("WebAssembly", guardedWasm());
      return nativeWasm;
    },
    set(value) {
      guardedWasm();
      define("WebAssembly", value);
    },
    configurable: true,
    enumerable: false,
  };
  function guardWasmOnFirstUse() {
    wasmState = 1;
    nativeWasm = globalThis.WebAssembly;
    if (nativeWasm !== undefined) Object.defineProperty(globalThis, "WebAssembly", wasmOnFirstUse);
  }
  function guardWasm(W) {
    wasmState = 2;
    // Every module's own memories are capped at the isolate's memory limit before V8 compiles
    // it (webapi/wasm_limits.rs): growing one past it fails, also from inside the module.
    const nativeCompile = W.compile;
    const NativeModule = W.Module;
    // Modules that define memories, and how many: each instance counts them against the
    // isolate's and the node's bounds, like a WebAssembly.Memory made in JS.
    const definedMemories = new WeakMap();
    const remember = (module, count) => {
      if (count > 0) definedMemories.set(module, count);
      return module;
    };
    const compile = (bytes) => {
      try {
        const [capped, count] = ops.wasmCap(bytes);
        return nativeCompile(capped).then((module) => remember(module, count));
      } catch (err) {
        return Promise.reject(err);
      }
    };
    Object.defineProperty(W, "compile", {
      value: { compile(bytes) { return compile(bytes); } }.compile,
      writable: true,
      configurable: true,
      enumerable: true,
    });
    function Module(bytes) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
      const [capped, count] = ops.wasmCap(bytes);
      return remember(Reflect.construct(NativeModule, [capped], new.target), count);
    }
    const NativeInstance = W.Instance;
    const instances = new FinalizationRegistry((count) => {
      for (let i = 0; i < count; i++) ops.wasmMemories(-1);
    });
    function Instance(module, imports) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Instance must be invoked with 'new'");
      const count = definedMemories.get(module) ?? 0;
      for (let i = 0; i < count; i++) {
        if (!ops.wasmMemories(1)) {
          while (i-- > 0) ops.wasmMemories(-1);
          throw new RangeError("WebAssembly.Instance: too many WebAssembly memories are open in this isolate or on this node; drop references to instances no longer used");
        }
      }
      let instance;
      try {
        instance = Reflect.construct(NativeInstance, [module, imports], new.target);
      } catch (err) {
        for (let i = 0; i < count; i++) ops.wasmMemories(-1);
        throw err;
      }
      if (count > 0) instances.register(instance, count);
      return instance;
    }
    Instance.prototype = NativeInstance.prototype;
    Object.defineProperty(NativeInstance.prototype, "constructor", { value: Instance, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(W, "Instance", { value: Instance, writable: true, configurable: true, enumerable: false });
    for (const name of ["exports", "imports", "customSections"]) Module[name] = NativeModule[name];
    Module.prototype = NativeModule.prototype;
    Object.defineProperty(NativeModule.prototype, "constructor", { value: Module, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(W, "Module", { value: Module, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(W, "instantiate", {
      value: {
        instantiate(source, imports) {
          if (source instanceof NativeModule) return Promise.resolve().then(() => new W.Instance(source, imports));
          return compile(source).then((module) => ({ module, instance: new W.Instance(module, imports) }));
        },
      }.instantiate,
      writable: true,
      configurable: true,
      enumerable: true,
    });
    Object.defineProperty(W.instantiate, "length", { value: 1 });

    // WebAssembly memory lives outside the heap: no memory may be larger than the isolate's
    // memory limit (limits.memory_mb), neither made so nor grown so from JS (its maximum is
    // capped there), and their number is bounded per isolate and per node (each one reserves
    // address space; too many abort the process). Refusals are RangeErrors, at once.
    const PAGE = 65536;
    const NativeMemory = W.Memory;
    const nativeGrow = NativeMemory.prototype.grow;
    const limitPages = () => Math.floor(ops.memoryLimit() / PAGE);
    const collected = new FinalizationRegistry(() => ops.wasmMemories(-1));
    const pages = (value, what) => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) return value; // the native constructor says what is wrong
      if (n > limitPages()) {
        throw new RangeError(`WebAssembly.Memory: ${what} of ${n} pages (${n * PAGE} bytes) is more than the isolate's memory limit allows (${limitPages()} pages, limits.memory_mb)`);
      }
      return n;
    };
    function Memory(descriptor) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Memory must be invoked with 'new'");
      if (descriptor === null || typeof descriptor !== "object") return Reflect.construct(NativeMemory, [descriptor], new.target);
      const capped = { ...descriptor };
      capped.initial = pages(descriptor.initial, "an initial size");
      // A larger maximum (emscripten declares 4 GiB) is lowered to the limit: growing past it fails.
      const maximum = Number(descriptor.maximum);
      capped.maximum = descriptor.maximum === undefined || !(maximum >= 0) ? descriptor.maximum ?? limitPages() : Math.min(maximum, limitPages());
      if (!ops.wasmMemories(1)) {
        throw new RangeError("WebAssembly.Memory: too many WebAssembly memories are open in this isolate or on this node; drop references to ones no longer used");
      }
      let memory;
      try {
        memory = Reflect.construct(NativeMemory, [capped], new.target);
      } catch (err) {
        ops.wasmMemories(-1);
        throw err;
      }
      collected.register(memory, 0);
      return memory;
    }
    Memory.prototype = NativeMemory.prototype;
    Object.defineProperty(NativeMemory.prototype, "constructor", { value: Memory, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(W, "Memory", { value: Memory, writable: true, configurable: true, enumerable: false });
    // A table's entries take at least 8 bytes each, outside what V8 counts as heap use until it
    // has filled them: bounded the same way.
    const NativeTable = W.Table;
    const nativeTableGrow = NativeTable.prototype.grow;
    const tableLimit = () => Math.floor(ops.memoryLimit() / 8);
    const entries = (value, what) => {
      const n = Number(value);
      if (Number.isFinite(n) && n > tableLimit()) {
        throw new RangeError(`WebAssembly.Table: ${what} of ${n} entries is more than the isolate's memory limit allows (${tableLimit()} entries of 8 bytes, limits.memory_mb)`);
      }
      return value;
    };
    function Table(descriptor, ...rest) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Table must be invoked with 'new'");
      if (descriptor === null || typeof descriptor !== "object") return Reflect.construct(NativeTable, [descriptor, ...rest], new.target);
      const capped = { ...descriptor, initial: entries(descriptor.initial, "an initial size") };
      const maximum = Number(descriptor.maximum);
      capped.maximum = descriptor.maximum === undefined || !(maximum >= 0) ? descriptor.maximum ?? tableLimit() : Math.min(maximum, tableLimit());
      return Reflect.construct(NativeTable, [capped, ...rest], new.target);
    }
    Table.prototype = NativeTable.prototype;
    Object.defineProperty(NativeTable.prototype, "constructor", { value: Table, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(W, "Table", { value: Table, writable: true, configurable: true, enumerable: false });
    Object.defineProperty(NativeTable.prototype, "grow", {
      value: {
        grow(delta, ...rest) {
          const add = Number(delta);
          if (Number.isFinite(add) && add > 0) entries(this.length + add, "growing to a size");
          return Reflect.apply(nativeTableGrow, this, [delta, ...rest]);
        },
      }.grow,
      writable: true,
      configurable: true,
      enumerable: true,
    });
    Object.defineProperty(NativeMemory.prototype, "grow", {
      value: {
        grow(delta) {
          const add = Number(delta);
          if (Number.isFinite(add) && add > 0) {
            const now = this.buffer.byteLength / PAGE;
            if (now + add > limitPages()) {
              throw new RangeError(`WebAssembly.Memory.grow: ${now + add} pages (${(now + add) * PAGE} bytes) is more than the isolate's memory limit allows (${limitPages()} pages, limits.memory_mb)`);
            }
          }
          return Reflect.apply(nativeGrow, this, [delta]);
        },
      }.grow,
      writable: true,
      configurable: true,
      enumerable: true,
    });
  }

  // ---- .wasm imports ------------------------------------------------------------------------------
  // Each `import mod from "./x.wasm"` is a small module whose default export the runtime fills,
  // in every context, with a WebAssembly.Module (see isolate/modules.rs).
  const wasmSetters = new Map();
  define("__nano_wasm_register", (name, setter) => wasmSetters.set(name, setter));
  function setWasm(name, module) {
    // The module's `constructor` must already be the guarded one.
    if (wasmState === 0) guardWasmOnFirstUse();
    void globalThis.WebAssembly;
    wasmSetters.get(name)?.(module);
  }

  // ---- handler registration and dispatch -----------------------------------------------------
  const fetchListeners = [];
  let defaultHandler = null;
  define("addEventListener", (type, listener) => {
    if (type === "fetch" && typeof listener === "function") fetchListeners.push(listener);
  });
  define("removeEventListener", (type, listener) => {
    const i = fetchListeners.indexOf(listener);
    if (type === "fetch" && i >= 0) fetchListeners.splice(i, 1);
  });

  class FetchEvent {
    #request; #ctx;
    constructor(request, ctx) { this.#request = request; this.#ctx = ctx; this[kState] = { responded: false, response: undefined }; }
    get type() { return "fetch"; }
    get request() { return this.#request; }
    respondWith(response) {
      if (this[kState].responded) throw new Error("FetchEvent.respondWith() was already called");
      this[kState].responded = true;
      this[kState].response = response;
    }
    waitUntil(promise) { this.#ctx.waitUntil(promise); }
    passThroughOnException() {}
  }

  class ExecutionContext {
    #waits;
    constructor(waits) { this.#waits = waits; }
    waitUntil(promise) { this.#waits.push(Promise.resolve(promise)); }
    passThroughOnException() {}
  }

  function register(namespace) {
    delete globalThis.__nano_wasm_register;
    delete globalThis.__nano_builtin;
    const handler = namespace.default;
    if (handler !== undefined && handler !== null && typeof handler.fetch === "function") {
      defaultHandler = handler;
      return "module";
    }
    if (fetchListeners.length > 0) return "listener";
    if (handler !== undefined && typeof handler === "object") {
      throw new TypeError("the default export has no fetch() method; export default { fetch(request, env, ctx) { ... } }");
    }
    throw new TypeError(
      "the module has no fetch handler: use `export default { fetch(request, env, ctx) {...} }` or `addEventListener(\"fetch\", (event) => event.respondWith(...))`",
    );
  }

  // An exception's message and stack go into a response and the log: cut to a few KiB first (an
  // app can throw a 50 MiB message).
  function describeError(err) {
    if (err instanceof Error) return [cut(`${err.name}: ${cut(String(err.message), 4096)}`, 4096), cut(String(err.stack || ""), 16384)];
    let text;
    try { text = typeof err === "object" ? JSON.stringify(err) : String(err); } catch { text = String(err); }
    return [cut(`uncaught ${typeof err}: ${cut(String(text), 4096)}`, 4096), ""];
  }
  function typeName(v) {
    if (v === null) return "null";
    if (typeof v !== "object") return typeof v;
    return v.constructor && v.constructor.name ? `an instance of ${v.constructor.name}` : "an object";
  }

  async function handle(id, request, env, ctx) {
    let result;
    try {
      if (defaultHandler !== null) {
        result = await defaultHandler.fetch(request, env, ctx);
      } else {
        const event = new FetchEvent(request, ctx);
        for (const listener of fetchListeners) {
          listener.call(globalThis, event);
          if (event[kState].responded) break;
        }
        if (!event[kState].responded) {
          throw new Error("no fetch listener called event.respondWith()");
        }
        result = await event[kState].response;
      }
    } catch (err) {
      const [message, stack] = describeError(err);
      ops.fail(id, "handler-exception", message, stack);
      return;
    }
    if (!(result instanceof Response)) {
      ops.fail(id, "bad-response", `the fetch handler returned ${typeName(result)} instead of a Response`, "");
      return;
    }
    if (result.type === "error") {
      ops.fail(id, "bad-response", "the fetch handler returned Response.error()", "");
      return;
    }
    const s = result[kState];
    const flat = [];
    for (const [k, v] of Headers[kState](s.headers)) flat.push(k, v);
    if (!s.stream) {
      ops.respond(id, s.status, flat, s.bytes);
      return;
    }
    // A streamed body goes out chunk by chunk as the app produces it.
    if (result.bodyUsed) {
      ops.fail(id, "bad-response", "the response body stream was already read", "");
      return;
    }
    // The head goes out with the first chunk: a stream that fails before it is a 500, not a
    // 200 with a broken body.
    const reader = s.stream.getReader();
    let next;
    try {
      next = await reader.read();
    } catch (err) {
      const [message, stack] = describeError(err);
      ops.fail(id, "handler-exception", `the response stream failed before its first byte: ${message}`, stack);
      return;
    }
    ops.respondStream(id, s.status, flat);
    try {
      for (; !next.done; next = await reader.read()) {
        // 0: sent; a ticket: queued behind a full channel (the client reads slower than this
        // stream writes), so wait until it is sent before pulling more; -1: the client is gone.
        const sent = ops.streamChunk(id, bodyChunk(next.value));
        if (sent < 0) {
          await reader.cancel().catch(() => {});
          return;
        }
        if (sent > 0) await new Promise((resolve) => pendingFetches.set(sent, { resolve, reject: resolve }));
      }
      ops.streamEnd(id, null);
    } catch (err) {
      const [message] = describeError(err);
      console.error("the response stream failed:", message);
      ops.streamEnd(id, message);
    }
  }

  function dispatch(id, method, url, flatHeaders, body, env) {
    // No async context survives from an earlier request (the frame is the isolate's, not the
    // context's), and process.env is the app's env, as on workerd.
    ops.setAsyncContext(undefined);
    if (wasmState === 0) guardWasmOnFirstUse();
    // Without context reset: forget the timers that ended with earlier requests.
    const ended = ops.timersEnded();
    if (ended !== undefined) for (const id of ended) timers.delete(id);
    requestEnv = env;
    if (tiers.rest !== undefined) Object.assign(tiers.rest.process.env, env);
    const headers = new Headers();
    const list = Headers[kState](headers);
    for (let i = 0; i < flatHeaders.length; i += 2) list.push([flatHeaders[i], flatHeaders[i + 1]]);
    const request = new Request(url, { method, headers });
    Headers.freeze(request.headers);
    request[kState].bytes = body;
    const waits = [];
    const ctx = new ExecutionContext(waits);
    handle(id, request, env, ctx)
      .then(async () => {
        for (let seen = 0; seen < waits.length; ) {
          const batch = waits.slice(seen);
          seen = waits.length;
          await Promise.allSettled(batch);
        }
      })
      .finally(() => ops.done(id));
  }

  return { register, dispatch, fireTimer, fetchDone, setWasm, lazyGlobals };
});
