// NANO Node layer, tier "buffer": Buffer, its encodings and the error helpers the other tiers
// share. Compiled into a context on first use by the lazyScript op (see runtime/node.js); the script's value is the function that builds the tier.
//
// Reference answers: workerd (npm `workerd`, compatibility date 2026-11-01, nodejs_compat); the
// conformance test tests/e2e/compat.rs records them.
(function bufferTier(ops) {
  "use strict";

  const nodeError = (Ctor, code, message) => {
    const err = new Ctor(message);
    Object.defineProperty(err, "code", { value: code, writable: true, configurable: true, enumerable: true });
    return err;
  };
  const rangeError = (code, message) => nodeError(RangeError, code, message);
  const typeError = (code, message) => nodeError(TypeError, code, message);

  // ---- encodings -------------------------------------------------------------------------------
  const ENCODINGS = {
    utf8: "utf8", "utf-8": "utf8", hex: "hex", base64: "base64", base64url: "base64url",
    latin1: "latin1", binary: "latin1", ascii: "ascii", utf16le: "utf16le", "utf-16le": "utf16le",
    ucs2: "utf16le", "ucs-2": "utf16le",
  };
  const normalizeEncoding = (encoding) => {
    if (encoding === undefined || encoding === null) return "utf8";
    return ENCODINGS[String(encoding).toLowerCase()];
  };
  const encodingOf = (encoding) => {
    const normal = normalizeEncoding(encoding);
    if (normal === undefined) throw typeError("ERR_UNKNOWN_ENCODING", `Unknown encoding: ${encoding}`);
    return normal;
  };

  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const B64_VALUE = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;
  B64_VALUE[45] = 62; // '-' of base64url
  B64_VALUE[95] = 63; // '_' of base64url

  // Long strings are built from byte runs in slices: String.fromCharCode takes its arguments on
  // the stack.
  const CHUNK = 0x2000;
  const fromCodes = (codes) => {
    let out = "";
    for (let i = 0; i < codes.length; i += CHUNK) out += String.fromCharCode.apply(null, codes.subarray(i, i + CHUNK));
    return out;
  };

  function encodeString(string, encoding) {
    switch (encoding) {
      case "utf8": return ops.encodeUtf8(string);
      case "latin1":
      case "ascii": {
        const out = new Uint8Array(string.length);
        for (let i = 0; i < string.length; i++) out[i] = string.charCodeAt(i);
        return out;
      }
      case "utf16le": {
        const out = new Uint8Array(string.length * 2);
        for (let i = 0; i < string.length; i++) {
          const c = string.charCodeAt(i);
          out[i * 2] = c & 255;
          out[i * 2 + 1] = c >> 8;
        }
        return out;
      }
      case "hex": {
        const out = new Uint8Array(string.length >>> 1);
        let n = 0;
        for (; n < out.length; n++) {
          const byte = parseInt(string.substr(n * 2, 2), 16);
          if (Number.isNaN(byte) || !/^[0-9a-fA-F]{2}$/.test(string.substr(n * 2, 2))) break;
          out[n] = byte;
        }
        return out.subarray(0, n);
      }
      case "base64":
      case "base64url": {
        const out = new Uint8Array(Math.ceil((string.length * 3) / 4));
        let bits = 0, value = 0, n = 0;
        for (let i = 0; i < string.length; i++) {
          const c = string.charCodeAt(i);
          if (c === 61) break; // '=' ends the data
          const digit = c < 128 ? B64_VALUE[c] : -1;
          if (digit < 0) continue; // whitespace and stray characters are skipped, as in Node
          value = ((value << 6) | digit) & 0xffffff;
          bits += 6;
          if (bits >= 8) {
            bits -= 8;
            out[n++] = (value >> bits) & 255;
          }
        }
        return out.subarray(0, n);
      }
    }
    throw typeError("ERR_UNKNOWN_ENCODING", `Unknown encoding: ${encoding}`);
  }

  function decodeBytes(bytes, encoding) {
    switch (encoding) {
      case "utf8": return ops.decodeUtf8(bytes, false, true);
      case "latin1": return fromCodes(bytes);
      case "ascii": {
        const codes = new Uint8Array(bytes.length);
        for (let i = 0; i < bytes.length; i++) codes[i] = bytes[i] & 0x7f;
        return fromCodes(codes);
      }
      case "utf16le": {
        const codes = new Uint16Array(bytes.length >>> 1);
        for (let i = 0; i < codes.length; i++) codes[i] = bytes[i * 2] | (bytes[i * 2 + 1] << 8);
        return fromCodes(codes);
      }
      case "hex": {
        let out = "";
        for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
        return out;
      }
      case "base64":
      case "base64url": {
        const alphabet = encoding === "base64" ? B64 : B64.slice(0, 62) + "-_";
        let out = "";
        for (let i = 0; i < bytes.length; i += 3) {
          const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
          out += alphabet[n >> 18] + alphabet[(n >> 12) & 63];
          out += i + 1 < bytes.length ? alphabet[(n >> 6) & 63] : encoding === "base64" ? "=" : "";
          out += i + 2 < bytes.length ? alphabet[n & 63] : encoding === "base64" ? "=" : "";
        }
        return out;
      }
    }
    throw typeError("ERR_UNKNOWN_ENCODING", `Unknown encoding: ${encoding}`);
  }

  // ---- Buffer ----------------------------------------------------------------------------------
  const kMaxLength = 2 ** 32;
  const bytesOf = (value, what) => {
    if (value instanceof Uint8Array) return value;
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
    throw typeError("ERR_INVALID_ARG_TYPE", `The "${what}" argument must be an instance of Buffer, TypedArray, DataView or ArrayBuffer`);
  };
  const checkSize = (size) => {
    if (typeof size !== "number") throw typeError("ERR_INVALID_ARG_TYPE", `The "size" argument must be of type number. Received ${typeof size}`);
    if (!(size >= 0 && size <= kMaxLength)) throw rangeError("ERR_OUT_OF_RANGE", `The value of "size" is out of range. It must be >= 0 && <= ${kMaxLength}. Received ${size}`);
    return size;
  };

  class Buffer extends Uint8Array {
    // `new Buffer(...)` is deprecated in Node but still works; typed-array species calls
    // (subarray, map, filter) arrive here with (buffer, byteOffset, length).
    constructor(arg, encodingOrOffset, length) {
      if (typeof arg === "number") {
        super(checkSize(arg));
      } else if (typeof arg === "string" || (arg !== null && typeof arg === "object" && !(arg instanceof ArrayBuffer) && !(arg instanceof SharedArrayBuffer))) {
        const bytes = typeof arg === "string" ? encodeString(arg, encodingOf(encodingOrOffset)) : Uint8Array.from(arg);
        super(bytes.length);
        this.set(bytes);
      } else {
        super(arg, encodingOrOffset, length);
      }
    }
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return fromBytes(encodeString(value, encodingOf(encodingOrOffset)));
      if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
        const offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset) >>> 0;
        if (offset > value.byteLength) throw rangeError("ERR_BUFFER_OUT_OF_BOUNDS", '"offset" is outside of buffer bounds');
        const len = length === undefined ? value.byteLength - offset : Number(length) >>> 0;
        if (offset + len > value.byteLength) throw rangeError("ERR_BUFFER_OUT_OF_BOUNDS", '"length" is outside of buffer bounds');
        return new Buffer(value, offset, len);
      }
      if (ArrayBuffer.isView(value)) return fromBytes(new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice());
      if (value !== null && typeof value === "object") {
        if (typeof value.valueOf === "function") {
          const primitive = value.valueOf();
          if (primitive !== value && primitive !== null && primitive !== undefined) return Buffer.from(primitive, encodingOrOffset, length);
        }
        if (value.type === "Buffer" && Array.isArray(value.data)) return fromBytes(Uint8Array.from(value.data));
        if (typeof value.length === "number" || Array.isArray(value)) return fromBytes(Uint8Array.from(value));
        if (typeof value[Symbol.toPrimitive] === "function") return Buffer.from(value[Symbol.toPrimitive]("string"), encodingOrOffset);
      }
      throw typeError("ERR_INVALID_ARG_TYPE", "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.");
    }
    static alloc(size, fill, encoding) {
      const buffer = new Buffer(checkSize(size));
      if (fill !== undefined && fill !== 0 && size > 0) buffer.fill(fill, 0, buffer.length, encoding);
      return buffer;
    }
    static allocUnsafe(size) { return new Buffer(checkSize(size)); }
    static allocUnsafeSlow(size) { return new Buffer(checkSize(size)); }
    static isBuffer(value) { return value instanceof Buffer; }
    static isEncoding(encoding) { return typeof encoding === "string" && encoding.length > 0 && normalizeEncoding(encoding) !== undefined; }
    static byteLength(value, encoding) {
      if (typeof value !== "string") return bytesOf(value, "string").byteLength;
      const normal = normalizeEncoding(encoding) ?? "utf8";
      if (normal === "utf8") return ops.encodeUtf8(value).length;
      if (normal === "latin1" || normal === "ascii") return value.length;
      if (normal === "utf16le") return value.length * 2;
      if (normal === "hex") return value.length >>> 1;
      let len = value.length;
      while (len > 0 && value.charCodeAt(len - 1) === 61) len--;
      return (len * 3) >>> 2;
    }
    static concat(list, totalLength) {
      if (!Array.isArray(list)) throw typeError("ERR_INVALID_ARG_TYPE", 'The "list" argument must be an instance of Array');
      const total = totalLength === undefined ? list.reduce((n, b) => n + b.length, 0) : checkSize(totalLength);
      const out = Buffer.alloc(total);
      let at = 0;
      for (const item of list) {
        const bytes = bytesOf(item, "list[i]");
        if (at >= total) break;
        out.set(bytes.subarray(0, total - at), at);
        at += bytes.length;
      }
      return out;
    }
    static compare(a, b) { return compareBytes(bytesOf(a, "buf1"), bytesOf(b, "buf2")); }

    get parent() { return this.buffer; }
    get offset() { return this.byteOffset; }
    toString(encoding, start = 0, end = this.length) {
      const normal = encodingOf(encoding);
      start = Math.max(0, Math.trunc(Number(start)) || 0);
      end = Math.min(this.length, end === undefined ? this.length : Math.trunc(Number(end)) || 0);
      if (end <= start) return "";
      return decodeBytes(new Uint8Array(this.buffer, this.byteOffset + start, end - start), normal);
    }
    toLocaleString(encoding, start, end) { return this.toString(encoding, start, end); }
    toJSON() { return { type: "Buffer", data: Array.from(this) }; }
    equals(other) { return compareBytes(this, bytesOf(other, "otherBuffer")) === 0; }
    compare(target, targetStart = 0, targetEnd = target.length, sourceStart = 0, sourceEnd = this.length) {
      const t = bytesOf(target, "target");
      return compareBytes(this.subarray(sourceStart, sourceEnd), t.subarray(targetStart, targetEnd));
    }
    copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
      const t = bytesOf(target, "target");
      const source = new Uint8Array(this.buffer, this.byteOffset, this.length).subarray(sourceStart, sourceEnd);
      const count = Math.max(0, Math.min(source.length, t.length - targetStart));
      t.set(source.subarray(0, count), targetStart);
      return count;
    }
    // Node's slice shares memory, unlike Uint8Array's.
    slice(start, end) { return this.subarray(start, end); }
    write(string, offset, length, encoding) {
      if (typeof offset === "string") { encoding = offset; offset = 0; length = undefined; }
      else if (typeof length === "string") { encoding = length; length = undefined; }
      offset = offset === undefined ? 0 : offset >>> 0;
      if (offset > this.length) throw rangeError("ERR_BUFFER_OUT_OF_BOUNDS", '"offset" is outside of buffer bounds');
      const room = this.length - offset;
      const max = length === undefined ? room : Math.min(room, length >>> 0);
      const normal = encodingOf(encoding);
      let bytes = encodeString(String(string), normal);
      if (bytes.length > max) {
        bytes = bytes.subarray(0, max);
        // Only whole UTF-8 characters are written.
        if (normal === "utf8") {
          let cut = max;
          while (cut > 0 && (bytes[cut - 1] & 0xc0) === 0x80) cut--;
          if (cut > 0 && bytes[cut - 1] >= 0xc0) {
            const lead = bytes[cut - 1];
            const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (max - (cut - 1) < size) bytes = bytes.subarray(0, cut - 1);
          }
        } else if (normal === "utf16le") {
          bytes = bytes.subarray(0, max & ~1);
        }
      }
      this.set(bytes, offset);
      return bytes.length;
    }
    fill(value, offset = 0, end = this.length, encoding = undefined) {
      if (typeof offset === "string") { encoding = offset; offset = 0; end = this.length; }
      else if (typeof end === "string") { encoding = end; end = this.length; }
      if (typeof value === "number" || typeof value === "boolean") return Uint8Array.prototype.fill.call(this, Number(value) & 255, offset, end);
      const pattern = typeof value === "string" ? encodeString(value, encodingOf(encoding)) : bytesOf(value, "value");
      if (pattern.length === 0) {
        if (typeof value === "string" && value.length > 0) throw typeError("ERR_INVALID_ARG_VALUE", `The argument 'value' is invalid. Received '${value}'`);
        return Uint8Array.prototype.fill.call(this, 0, offset, end);
      }
      for (let i = offset, j = 0; i < end; i++, j = (j + 1) % pattern.length) this[i] = pattern[j];
      return this;
    }
    indexOf(value, byteOffset, encoding) { return search(this, value, byteOffset, encoding, false); }
    lastIndexOf(value, byteOffset, encoding) { return search(this, value, byteOffset, encoding, true); }
    includes(value, byteOffset, encoding) { return this.indexOf(value, byteOffset, encoding) !== -1; }
    swap16() { return swap(this, 2); }
    swap32() { return swap(this, 4); }
    swap64() { return swap(this, 8); }
    readUIntLE(offset, byteLength) { return readVariable(this, offset, byteLength, true, false); }
    readUIntBE(offset, byteLength) { return readVariable(this, offset, byteLength, false, false); }
    readIntLE(offset, byteLength) { return readVariable(this, offset, byteLength, true, true); }
    readIntBE(offset, byteLength) { return readVariable(this, offset, byteLength, false, true); }
    writeUIntLE(value, offset, byteLength) { return writeVariable(this, value, offset, byteLength, true); }
    writeUIntBE(value, offset, byteLength) { return writeVariable(this, value, offset, byteLength, false); }
    writeIntLE(value, offset, byteLength) { return writeVariable(this, value, offset, byteLength, true); }
    writeIntBE(value, offset, byteLength) { return writeVariable(this, value, offset, byteLength, false); }
    // (Its unused parameters make Node's `length`.)
    inspect(recurseTimes, ctx) { return this[Symbol.for("nodejs.util.inspect.custom")](); }
    [Symbol.for("nodejs.util.inspect.custom")]() {
      const shown = Array.from(this.subarray(0, 50), (b) => (b < 16 ? "0" : "") + b.toString(16)).join(" ");
      return `<Buffer${shown ? ` ${shown}` : ""}${this.length > 50 ? ` ... ${this.length - 50} more bytes` : ""}>`;
    }
  }
  const fromBytes = (bytes) => new Buffer(bytes.buffer, bytes.byteOffset, bytes.length);
  Buffer.poolSize = 8192;

  // Node's per-encoding methods, which libraries call for speed (`buf.latin1Slice(start, end)`,
  // `buf.utf8Write(string, offset, length)`): toString and write with their arguments checked as
  // Node's bindings check them (numbers only, in range; a write's length is the buffer's unless
  // given, so an offset needs one).
  const received = (value) => {
    if (value === undefined || value === null) return ` Received ${value}`;
    if (typeof value === "function") return ` Received function ${value.name}`;
    if (typeof value === "object") return ` Received an instance of ${value.constructor?.name ?? "Object"}`;
    const shown = typeof value === "string" ? `'${value.slice(0, 25)}'` : typeof value === "bigint" ? `${value}n` : String(value);
    return ` Received type ${typeof value} (${shown})`;
  };
  const numberArg = (value, name, max) => {
    if (typeof value !== "number") throw typeError("ERR_INVALID_ARG_TYPE", `The "${name}" argument must be of type number.${received(value)}`);
    if (!(value >= 0 && value <= max)) throw rangeError("ERR_OUT_OF_RANGE", `The value of "${name}" is out of range. It must be >= 0 && <= ${max}. Received ${value}`);
    return Math.trunc(value);
  };
  for (const [prefix, encoding] of [["utf8", "utf8"], ["hex", "hex"], ["latin1", "latin1"], ["ascii", "ascii"],
    ["base64", "base64"], ["base64url", "base64url"], ["ucs2", "utf16le"]]) {
    const methods = {
      [`${prefix}Slice`](start, end) {
        const from = numberArg(start, "start", this.length);
        const to = numberArg(end, "end", this.length);
        return to <= from ? "" : decodeBytes(new Uint8Array(this.buffer, this.byteOffset + from, to - from), encoding);
      },
      [`${prefix}Write`](string, offset, length) {
        const at = numberArg(offset ?? 0, "offset", this.length);
        return this.write(string, at, numberArg(length ?? this.length, "length", this.length - at), encoding);
      },
    };
    for (const name of Object.keys(methods)) {
      Object.defineProperty(Buffer.prototype, name, { value: methods[name], writable: true, configurable: true, enumerable: false });
    }
  }

  function compareBytes(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
  }
  function search(buffer, value, byteOffset, encoding, last) {
    if (typeof byteOffset === "string") { encoding = byteOffset; byteOffset = undefined; }
    let from = byteOffset === undefined ? (last ? buffer.length - 1 : 0) : Math.trunc(Number(byteOffset)) || 0;
    if (from < 0) from += buffer.length;
    if (typeof value === "number") value = Uint8Array.of(value & 255);
    else if (typeof value === "string") value = encodeString(value, encodingOf(encoding));
    else value = bytesOf(value, "value");
    const step = last ? -1 : 1;
    const start = last ? Math.min(from, buffer.length - value.length) : Math.max(from, 0);
    for (let i = start; last ? i >= 0 : i <= buffer.length - value.length; i += step) {
      let j = 0;
      while (j < value.length && buffer[i + j] === value[j]) j++;
      if (j === value.length) return i;
    }
    return -1;
  }
  function swap(buffer, size) {
    if (buffer.length % size !== 0) throw rangeError("ERR_INVALID_BUFFER_SIZE", `Buffer size must be a multiple of ${size * 8}-bits`);
    for (let i = 0; i < buffer.length; i += size) buffer.subarray(i, i + size).reverse();
    return buffer;
  }
  function checkOffset(buffer, offset, size) {
    if (offset === undefined) offset = 0;
    if (typeof offset !== "number") throw typeError("ERR_INVALID_ARG_TYPE", `The "offset" argument must be of type number. Received ${typeof offset}`);
    if (buffer.length < size) throw rangeError("ERR_BUFFER_OUT_OF_BOUNDS", "Attempt to access memory outside buffer bounds");
    if (!Number.isInteger(offset) || offset < 0 || offset > buffer.length - size) {
      throw rangeError("ERR_OUT_OF_RANGE", `The value of "offset" is out of range. It must be >= 0 and <= ${buffer.length - size}. Received ${offset}`);
    }
    return offset;
  }
  const view = (buffer) => new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  // read/write{U,}Int{8,16,32}{LE,BE}, {Float,Double}{LE,BE}, Big{U,}Int64{LE,BE}, with Node's
  // lower-case Uint aliases.
  const ACCESSORS = [
    ["UInt8", "Uint8", 1], ["Int8", "Int8", 1], ["UInt16", "Uint16", 2], ["Int16", "Int16", 2],
    ["UInt32", "Uint32", 4], ["Int32", "Int32", 4], ["Float", "Float32", 4], ["Double", "Float64", 8],
    ["BigUInt64", "BigUint64", 8], ["BigInt64", "BigInt64", 8],
  ];
  for (const [name, dataView, size] of ACCESSORS) {
    for (const endian of size === 1 ? [""] : ["LE", "BE"]) {
      const little = endian === "LE";
      const read = function (offset) {
        return view(this)[`get${dataView}`](checkOffset(this, offset, size), little);
      };
      const write = function (value, offset) {
        const at = checkOffset(this, offset, size);
        if (dataView.startsWith("Big")) {
          if (typeof value !== "bigint") throw typeError("ERR_INVALID_ARG_TYPE", `The "value" argument must be of type bigint. Received ${typeof value}`);
        } else if (!dataView.startsWith("Float")) {
          const bits = size * 8;
          const [min, max] = dataView.startsWith("Int") ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
          value = Number(value);
          if (value < min || value > max) throw rangeError("ERR_OUT_OF_RANGE", `The value of "value" is out of range. It must be >= ${min} and <= ${max}. Received ${value}`);
        }
        view(this)[`set${dataView}`](at, value, little);
        return at + size;
      };
      for (const alias of new Set([name, name.replace("UInt", "Uint")])) {
        Buffer.prototype[`read${alias}${endian}`] = read;
        Buffer.prototype[`write${alias}${endian}`] = write;
      }
    }
  }
  for (const alias of ["readUintLE", "readUintBE", "writeUintLE", "writeUintBE"]) {
    Buffer.prototype[alias] = Buffer.prototype[alias.replace("Uint", "UInt")];
  }
  function readVariable(buffer, offset, byteLength, little, signed) {
    checkOffset(buffer, offset, byteLength);
    let value = 0;
    for (let i = 0; i < byteLength; i++) value += buffer[offset + (little ? i : byteLength - 1 - i)] * 2 ** (8 * i);
    if (signed && value >= 2 ** (8 * byteLength - 1)) value -= 2 ** (8 * byteLength);
    return value;
  }
  function writeVariable(buffer, value, offset, byteLength, little) {
    checkOffset(buffer, offset, byteLength);
    let v = Number(value);
    if (v < 0) v += 2 ** (8 * byteLength);
    for (let i = 0; i < byteLength; i++) {
      buffer[offset + (little ? i : byteLength - 1 - i)] = v % 256;
      v = Math.floor(v / 256);
    }
    return offset + byteLength;
  }

  const bufferModule = {
    Buffer, kMaxLength, kStringMaxLength: 2 ** 29 - 24, constants: { MAX_LENGTH: kMaxLength, MAX_STRING_LENGTH: 2 ** 29 - 24 },
    INSPECT_MAX_BYTES: 50, SlowBuffer: Buffer, Blob, File: globalThis.File,
    atob: globalThis.atob, btoa: globalThis.btoa,
    isUtf8: (input) => { try { ops.decodeUtf8(bytesOf(input, "input"), true, true); return true; } catch { return false; } },
    isAscii: (input) => bytesOf(input, "input").every((b) => b < 128),
    transcode: () => { throw nodeError(Error, "ERR_METHOD_NOT_IMPLEMENTED", "The buffer.transcode() method is not implemented"); },
  };
  return { nodeError, rangeError, typeError, received, bytesOf, encodeString, decodeBytes, encodingOf, fromBytes, Buffer, bufferModule };
})
