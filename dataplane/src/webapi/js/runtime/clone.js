// StructuredClone.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- structuredClone ---------------------------------------------------------------------------
  define("structuredClone", (value, options = undefined) => {
    const seen = new Map();
    // Transferred buffers move (the source is detached); a buffer already detached arrives
    // empty, as on workerd.
    for (const buffer of options?.transfer ?? []) {
      if (!(buffer instanceof ArrayBuffer)) throw new (domException())("structuredClone: only ArrayBuffers can be transferred", "DataCloneError");
      seen.set(buffer, buffer.detached ? new ArrayBuffer(0) : buffer.transfer());
    }
    const clone = (v) => {
      if (v === null || (typeof v !== "object" && typeof v !== "function" && typeof v !== "symbol")) return v;
      if (typeof v === "function" || typeof v === "symbol") {
        throw new (domException())(`structuredClone: ${typeof v === "function" ? "a function" : "a symbol"} could not be cloned`, "DataCloneError");
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

