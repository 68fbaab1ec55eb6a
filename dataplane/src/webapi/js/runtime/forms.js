// Blob, File, FormData.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- Blob, File, FormData, made on first use ----------------------------------------------------
  // Made in a context the first time it reads one of these globals or needs them itself (a body
  // read as a Blob or FormData); until then a reset-on request does not deserialise them.
  let forms = null;
  const formsApi = () => (forms ??= makeForms());
  lazyGlobal(["Blob", "File", "FormData"], formsApi);
  function makeForms() {
    // A Blob's bytes and type live in private fields, as workerd keeps them in the native
    // object: a Blob has no own properties.
    let blobBytes;
    const partBytes = (part) => {
      if (part instanceof Blob) return blobBytes(part);
      if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) return toBytes(part, "Blob").slice();
      return utf8(part);
    };
    class Blob {
      #bytes; #type;
      constructor(parts = [], options = {}) {
        const chunks = [...parts].map(partBytes);
        const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let offset = 0;
        for (const c of chunks) { out.set(c, offset); offset += c.length; }
        this.#bytes = out;
        const type = String(options?.type ?? "");
        this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : "";
      }
      static {
        // The bytes of `blob` (a TypeError for anything else).
        blobBytes = (blob) => blob.#bytes;
      }
      get type() { return this.#type; }
      get size() { return this.#bytes.length; }
      async text() { return fromUtf8(this.#bytes); }
      async arrayBuffer() { return this.#bytes.slice().buffer; }
      async bytes() { return this.#bytes.slice(); }
      slice(start = 0, end = this.size, type = "") {
        const blob = new Blob([], { type });
        blob.#bytes = this.#bytes.slice(start, end);
        return blob;
      }
      stream() {
        return streamsApi().bytesStream(this.#bytes);
      }
    }
    class File extends Blob {
      #name; #lastModified;
      constructor(parts, name, options = {}) {
        if (arguments.length < 2) throw new TypeError("File: a name is required");
        super(parts, options);
        this.#name = String(name);
        this.#lastModified = options?.lastModified === undefined ? Date.now() : Number(options.lastModified);
      }
      get name() { return this.#name; }
      get lastModified() { return this.#lastModified; }
    }

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

    // multipart/form-data: encode a FormData (as a body, body.js's Extracted), and parse a body back.
    function encodeMultipart(form) {
      const boundary = `----nano${ops.randomBytes(12).reduce((s, b) => s + b.toString(16).padStart(2, "0"), "")}`;
            const escape = (s) => s.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
      const parts = [];
      for (const [name, value] of form) {
        let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escape(name)}"`;
        if (value instanceof File) {
          head += `; filename="${escape(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}`;
          parts.push(utf8(`${head}\r\n\r\n`), blobBytes(value), utf8("\r\n"));
        } else {
          parts.push(utf8(`${head}\r\n\r\n${value}\r\n`));
        }
      }
      parts.push(utf8(`--${boundary}--\r\n`));
      return new Extracted(blobBytes(new Blob(parts)), `multipart/form-data; boundary=${boundary}`);
    }
    function parseFormData(bytes, contentType) {
      const form = new FormData();
      const type = (contentType ?? "").toLowerCase();
      if (type.startsWith("application/x-www-form-urlencoded")) {
        for (const [k, v] of new (urlApi().URLSearchParams)(fromUtf8(bytes))) form.append(k, v);
        return form;
      }
      const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
      if (!type.startsWith("multipart/form-data") || !match) {
        throw new TypeError("formData(): the body is neither multipart/form-data (with a boundary) nor application/x-www-form-urlencoded");
      }
      const boundary = utf8(`--${match[1] ?? match[2]}`);
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
        const head = fromUtf8(part.subarray(0, headEnd));
        const content = part.subarray(headEnd + 4);
        const disposition = /content-disposition:[^\r\n]*/i.exec(head)?.[0] ?? "";
        const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
        const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
        const ctype = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1] ?? "";
        if (name !== undefined) {
          if (filename !== undefined) form.append(name, new File([content], filename, { type: ctype }));
          else form.append(name, fromUtf8(content));
        }
        at = next;
      }
      return form;
    }
    tagClasses(Blob, File, FormData);
    return { Blob, File, FormData, blobBytes, encodeMultipart, parseFormData };
  }
