// StructuredClone.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- structuredClone ---------------------------------------------------------------------------
  define("structuredClone", (value, options = undefined) => {
    // The runtime's own objects, as workerd serialises them: a Blob, Headers, a DOMException and a
    // Request or Response without a body are copied; a body or stream can only go over RPC; every
    // other class of the runtime is refused. (Undefined for anything else.)
    const runtimeClone = (v) => {
      const refuse = (message) => { throw new (domException())(message, "DataCloneError"); };
      const unserializable = (name) => refuse(`Could not serialize object of type "${name}". This type does not support serialization.`);
      if (forms !== null && v instanceof forms.Blob) {
        if (v instanceof forms.File) unserializable("File");
        return new forms.Blob([forms.blobBytes(v)], { type: v.type });
      }
      if (v instanceof Headers) return new Headers(v);
      if (domExceptionClass !== null && v instanceof domExceptionClass) {
        const copy = new domExceptionClass(v.message, v.name);
        Object.defineProperty(copy, "stack", { value: v.stack, writable: true, enumerable: true, configurable: true });
        return copy;
      }
      if (v instanceof Request || v instanceof Response) {
        const state = bodyState(v);
        if (state.bytes !== null || state.stream) refuse("ReadableStream can only be serialized for RPC.");
        return v instanceof Request ? new Request(v) : new Response(null, { status: v.status, statusText: v.statusText, headers: v.headers });
      }
      if (isReadableStream(v)) refuse("ReadableStream can only be serialized for RPC.");
      if (isAbortSignal(v)) refuse("AbortSignal serialization is not enabled.");
      // A class of the runtime: its prototype's tag is the one tagClasses set (head.js).
      for (let proto = Object.getPrototypeOf(v); proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
        const tag = Object.getOwnPropertyDescriptor(proto, Symbol.toStringTag);
        if (tag?.writable && !tag.enumerable && tag.value === proto.constructor?.name && Object.hasOwn(proto, "constructor")) {
          unserializable(tag.value);
        }
      }
      return undefined;
    };
    // The typed array classes a view arrives as (a Buffer arrives as a Uint8Array, as on workerd).
    const viewClass = (v) => [Uint8Array, Int8Array, Uint8ClampedArray, Uint16Array, Int16Array, Uint32Array, Int32Array,
      Float16Array, Float32Array, Float64Array, BigUint64Array, BigInt64Array].find((T) => v instanceof T);
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
      if ((out = runtimeClone(v)) !== undefined) {
        // (One of the runtime's objects.)
      } else if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) {
        const buffer = clone(v.buffer);
        out = v instanceof DataView ? new DataView(buffer, v.byteOffset, v.byteLength) : new (viewClass(v))(buffer, v.byteOffset, v.length);
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

