// NANO runtime glue: globals compiled into a context only when it first reads one of them
// (CompressionStream, DecompressionStream, URLPattern, MessageChannel, MessagePort,
// MessageEvent, ByteLengthQueuingStrategy, CountQueuingStrategy). runtime/globals.js defines them as lazy
// globals and compiles this script with the lazyScript op; its value is the function that
// builds them, given the ops and the runtime's internal helpers.
(function extras(ops, helpers) {
  "use strict";
  const { kState, toBytes, feedCodec, tagClasses } = helpers;
  // ---- CompressionStream, DecompressionStream -----------------------------------------------------
  // flate2 behind the codec ops (webapi/codec.rs), fed through runtime/encoding.js's feedCodec.
  const COMPRESSION_FORMATS = ["gzip", "deflate", "deflate-raw"];
  function codecTransform(kind, format, name) {
    format = String(format);
    if (!COMPRESSION_FORMATS.includes(format)) {
      throw new TypeError(`${name}: the format must be "gzip", "deflate" or "deflate-raw", not ${JSON.stringify(format)}`);
    }
    let codec = ops.codecOpen(kind, format);
    return new TransformStream({
      transform(chunk, controller) {
        for (const out of feedCodec(codec, kind, toBytes(chunk, `${name}: a chunk`))) controller.enqueue(out);
      },
      flush(controller) {
        const out = ops.compressFinish(codec);
        codec = 0;
        if (out.length) controller.enqueue(out);
      },
      cancel() {
        if (codec) ops.codecClose(codec);
      },
    });
  }
  class CompressionStream {
    #transform;
    constructor(format) { this.#transform = codecTransform("compress", format, "CompressionStream"); }
    get readable() { return this.#transform.readable; }
    get writable() { return this.#transform.writable; }
  }
  class DecompressionStream {
    #transform;
    constructor(format) { this.#transform = codecTransform("decompress", format, "DecompressionStream"); }
    get readable() { return this.#transform.readable; }
    get writable() { return this.#transform.writable; }
  }

  // ---- URLPattern --------------------------------------------------------------------------------
  // The urlpattern crate turns a pattern into one regular expression per URL component
  // (webapi/urlpattern.rs); matching runs here, in V8's RegExp, under the request's limits.
  const URL_COMPONENTS = ["protocol", "username", "password", "hostname", "port", "pathname", "search", "hash"];
  const patternJson = (input) => {
    if (typeof input === "string") return JSON.stringify(input);
    if (input === null || typeof input !== "object") throw new TypeError("URLPattern: the input must be a string or a URLPatternInit object");
    const init = {};
    for (const key of [...URL_COMPONENTS, "baseURL"]) if (input[key] !== undefined) init[key] = String(input[key]);
    return JSON.stringify(init);
  };
  class URLPattern {
    #parts; #regexps = {};
    constructor(input = {}, baseURL = undefined, options = undefined) {
      if (baseURL !== null && typeof baseURL === "object") {
        options = baseURL;
        baseURL = undefined;
      }
      const ignoreCase = Boolean(options?.ignoreCase);
      this.#parts = JSON.parse(ops.urlPatternParse(patternJson(input), baseURL === undefined ? undefined : String(baseURL), ignoreCase));
      for (const key of URL_COMPONENTS) {
        try {
          this.#regexps[key] = new RegExp(this.#parts[key].regexpString, ignoreCase ? "ui" : "u");
        } catch (err) {
          throw new TypeError(`URLPattern: the ${key} pattern is not a valid regular expression (${err.message})`);
        }
      }
    }
    get hasRegExpGroups() { return this.#parts.hasRegexpGroups; }
    test(input = {}, baseURL = undefined) { return this.#match(input, baseURL) !== null; }
    exec(input = {}, baseURL = undefined) { return this.#match(input, baseURL); }
    #match(input, baseURL) {
      const found = ops.urlPatternInput(patternJson(input), baseURL === undefined ? undefined : String(baseURL));
      if (found === undefined) return null;
      const [values, [given, base]] = JSON.parse(found);
      const result = { inputs: base === null ? [given] : [given, base] };
      for (const key of URL_COMPONENTS) {
        const match = this.#regexps[key].exec(values[key]);
        if (match === null) return null;
        const groups = {};
        this.#parts[key].groupNameList.forEach((name, i) => { groups[name] = match[i + 1]; });
        result[key] = { input: values[key], groups };
      }
      return result;
    }
    static {
      for (const key of URL_COMPONENTS) {
        Object.defineProperty(URLPattern.prototype, key, {
          get() { return this.#parts[key].patternString; },
          configurable: true,
          enumerable: true,
        });
      }
    }
  }

  // ---- MessageChannel ----------------------------------------------------------------------------
  // Ports of one isolate: a message is a structured clone, delivered as a microtask once the
  // receiving port is started (setting onmessage starts it, addEventListener needs start()).
  // Its members are own read-only properties, as on workerd.
  class MessageEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      const members = [["ports", Object.freeze([...(init?.ports ?? [])])], ["source", null], ["lastEventId", ""], ["origin", ""],
        ["data", init?.data ?? null]];
      for (const [name, value] of members) {
        Object.defineProperty(this, name, { value, writable: false, enumerable: true, configurable: true });
      }
    }
  }
  // Joins two ports as each other's other end.
  let entangle;
  class MessagePort extends EventTarget {
    #other = null; #started = false; #closed = false; #queue = []; #onmessage = null;
    constructor(key) {
      super();
      if (key !== kState) throw new TypeError("Illegal constructor: MessagePort comes from a MessageChannel");
    }
    static {
      entangle = (a, b) => { a.#other = b; b.#other = a; };
    }
    get onmessage() { return this.#onmessage; }
    set onmessage(handler) {
      if (this.#onmessage) this.removeEventListener("message", this.#onmessage);
      this.#onmessage = typeof handler === "function" ? handler : null;
      if (this.#onmessage) this.addEventListener("message", this.#onmessage);
      this.start();
    }
    postMessage(message, transfer = undefined) {
      const data = structuredClone(message, Array.isArray(transfer) ? { transfer } : transfer);
      const target = this.#other;
      if (this.#closed || target === null || target.#closed) return;
      target.#queue.push(data);
      target.#flush();
    }
    start() {
      if (this.#started) return;
      this.#started = true;
      this.#flush();
    }
    close() {
      this.#closed = true;
      this.#queue.length = 0;
    }
    #flush() {
      if (!this.#started) return;
      while (this.#queue.length) {
        const data = this.#queue.shift();
        Promise.resolve().then(() => { if (!this.#closed) this.dispatchEvent(new MessageEvent("message", { data })); });
      }
    }
  }
  // Its ports are own read-only properties, as on workerd.
  class MessageChannel {
    constructor() {
      const port1 = new MessagePort(kState);
      const port2 = new MessagePort(kState);
      entangle(port1, port2);
      for (const [name, value] of [["port2", port2], ["port1", port1]]) {
        Object.defineProperty(this, name, { value, writable: false, enumerable: true, configurable: true });
      }
    }
  }

  // ---- queuing strategies, scheduler ---------------------------------------------------------------
  const strategyMark = (init, name) => {
    if (init === null || typeof init !== "object" || init.highWaterMark === undefined) {
      throw new TypeError(`${name}: the init argument needs a highWaterMark`);
    }
    return Number(init.highWaterMark);
  };
  class ByteLengthQueuingStrategy {
    #highWaterMark;
    constructor(init) { this.#highWaterMark = strategyMark(init, "ByteLengthQueuingStrategy"); }
    get highWaterMark() { return this.#highWaterMark; }
    get size() { return (chunk) => chunk.byteLength; }
  }
  class CountQueuingStrategy {
    #highWaterMark;
    constructor(init) { this.#highWaterMark = strategyMark(init, "CountQueuingStrategy"); }
    get highWaterMark() { return this.#highWaterMark; }
    get size() { return () => 1; }
  }

  tagClasses(CompressionStream, DecompressionStream, URLPattern, MessageEvent, MessagePort, MessageChannel,
    ByteLengthQueuingStrategy, CountQueuingStrategy);
  return { CompressionStream, DecompressionStream, URLPattern, MessageEvent, MessagePort, MessageChannel,
    ByteLengthQueuingStrategy, CountQueuingStrategy };
})
