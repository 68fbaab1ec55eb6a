// TextEncoder, TextDecoder (every WHATWG label) and their streaming forms.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- encoding ------------------------------------------------------------------------------
  // What the runtime itself encodes and decodes (bodies, forms): UTF-8 by the ops, without the
  // classes, which a context makes the first time it reads TextEncoder or TextDecoder.
  const utf8 = (text) => ops.encodeUtf8(String(text));
  const fromUtf8 = (bytes) => ops.decodeUtf8(bytes, false, false);
  let encoding = null;
  const encodingApi = () => (encoding ??= makeEncoding());
  lazyGlobal(["TextEncoder", "TextDecoder"], encodingApi);
  function makeEncoding() {
    class TextEncoder {
      get encoding() { return "utf-8"; }
      encode(input = "") { return utf8(input); }
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
    tagClasses(TextEncoder, TextDecoder);
    return { TextEncoder, TextDecoder };
  }

  function toBytes(input, what) {
    if (input instanceof Uint8Array) return input;
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    throw new TypeError(`${what}: expected an ArrayBuffer or a view of one`);
  }
  // Feeds `bytes` to a codec (webapi/codec.rs) in slices, so the CPU limit can step in between
  // calls and a decompressing call stays within codec.rs's INFLATE_SLICE; answers what came
  // out. CompressionStream (extras.js), node:zlib (node/rest.js) and DigestStream (crypto.js)
  // use it.
  const feedCodec = (codec, kind, bytes) => {
    const slice = kind === "decompress" ? 4096 : 65536;
    const out = [];
    for (let i = 0; i < bytes.length; i += slice) {
      const part = ops.compressPush(codec, bytes.subarray(i, i + slice));
      if (part.length) out.push(part);
    }
    return out;
  };


