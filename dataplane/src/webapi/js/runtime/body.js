// Body, Request, Response.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- Body, Request, Response ---------------------------------------------------------------
  // What extractBody answers: the body's bytes or stream, and the content type it implies. A class
  // (see ResponseState below), with one shape whatever the body.
  class Extracted {
    constructor(bytes, type, stream = null) {
      this.bytes = bytes;
      this.stream = stream;
      this.type = type;
    }
  }
  function extractBody(body) {
    if (body === undefined || body === null) return new Extracted(null, null);
    if (isReadableStream(body)) {
      if (body.locked || streams.disturbed(body)) throw new TypeError("body: the ReadableStream is locked or already read");
      return new Extracted(null, null, body);
    }
    if (typeof body === "string") return new Extracted(utf8(body), "text/plain;charset=UTF-8");
    // No Blob, FormData or URLSearchParams exists in a context before their classes are made.
    if (forms !== null && body instanceof forms.Blob) return new Extracted(forms.blobBytes(body).slice(), body.type || null);
    if (forms !== null && body instanceof forms.FormData) return forms.encodeMultipart(body);
    if (urls !== null && body instanceof urls.URLSearchParams) {
      return new Extracted(utf8(body.toString()), "application/x-www-form-urlencoded;charset=UTF-8");
    }
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return new Extracted(toBytes(body, "body").slice(), null);
    return new Extracted(utf8(body), "text/plain;charset=UTF-8");
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
  // What Request and Response share, as workerd's Body: one class, so a context holds its
  // methods once.
  //
  // A Request's or Response's own state (its URL or status, headers, body) is Body's private
  // field: no app reaches it. `bodyState(o)` reads it for the runtime (a TypeError for anything
  // else, as a brand check).
  let bodyState, takeBody;
  class Body {
    #state;
    constructor(state) { this.#state = state; }
    static {
      bodyState = (o) => o.#state;
      // The body's bytes, read whole and marked used, as the read methods take it (fetch()).
      takeBody = (o, what) => o.#take(what);
    }
    get bodyUsed() {
      const { used, stream } = this.#state;
      return used || Boolean(stream && streams.disturbed(stream));
    }
    // The body as a stream: the app's own, or one chunk holding the bytes (made once).
    get body() {
      const state = this.#state;
      if (state.stream) return state.stream;
      if (state.bytes === null) return null;
      // A byte stream, as on Workers.
      state.stream = streamsApi().bytesStream(state.bytes);
      return state.stream;
    }
    async #take(what) {
      const state = this.#state;
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
    async text() { return fromUtf8(await this.#take("text()")); }
    async json() { return JSON.parse(await this.text()); }
    async blob() {
      const bytes = await this.#take("blob()");
      return new (formsApi().Blob)([bytes], { type: this.headers.get("content-type") ?? "" });
    }
    async formData() {
      return formsApi().parseFormData(await this.#take("formData()"), this.headers.get("content-type"));
    }
  }

  // A Response's and a Request's state (Body's private field). Classes rather than object
  // literals: with context reset every request makes them in a context fresh from the snapshot,
  // where no code has feedback yet, and there V8 builds a literal from its description property
  // by property, then stores each value through a miss: a constructor's stores cost a reset-on
  // request 1.7% fewer instructions (RESULTS, session 16). The instances the snapshot keeps
  // (dispatch.js, `warmed`) keep their hidden classes in it.
  class ResponseState {
    constructor(status, statusText, headers, bytes, stream, webSocket) {
      this.status = status;
      this.statusText = statusText;
      this.headers = headers;
      this.bytes = bytes;
      this.stream = stream;
      this.used = false;
      this.type = "default";
      this.url = "";
      this.webSocket = webSocket;
    }
  }
  class RequestState {
    constructor(url, method, headers, bytes, stream, signal, redirect, cf, client, cache) {
      this.url = url;
      this.method = method;
      this.headers = headers;
      this.bytes = bytes;
      this.stream = stream;
      this.used = false;
      this.signal = signal;
      this.redirect = redirect;
      this.cf = cf;
      this.client = client;
      this.cache = cache;
    }
  }

  const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);
  const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
  class Response extends Body {
    constructor(body = null, init = {}) {
      const status = init.status === undefined ? 200 : Number(init.status);
      // A WebSocketPair end, for a 101 that accepts a WebSocket (js/websocket.js).
      const webSocket = init.webSocket ?? null;
      if (webSocket !== null) {
        if (!websockets().internals.isWebSocket(webSocket)) {
          throw new TypeError("Response: webSocket must be an end of a WebSocketPair");
        }
        if (status !== 101) throw new RangeError("Responses with a WebSocket must have status code 101.");
      } else if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Response: status ${init.status} is not in the range 200 to 599`);
      }
      const { bytes, stream, type } = extractBody(body);
      if ((bytes !== null || stream !== null) && NULL_BODY_STATUS.has(status)) {
        throw new TypeError(`Response: a ${status} response cannot have a body`);
      }
      const headers = new Headers(init.headers);
      if (type) {
        // Without headers given (a plain `new Response(text)`) the type needs no checks.
        if (init.headers === undefined) headerList(headers).push(["content-type", type]);
        else if (!headers.has("content-type")) headers.set("content-type", type);
      }
      super(new ResponseState(status, String(init.statusText ?? ""), headers, bytes, stream, webSocket));
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
      const response = new Response(null, { status, headers: { location: parseUrl(url)[0] } });
      freezeHeaders(bodyState(response).headers);
      return response;
    }
    static error() {
      const r = new Response(null, { status: 200 });
      bodyState(r).status = 0;
      bodyState(r).type = "error";
      return r;
    }
    get status() { return bodyState(this).status; }
    get statusText() { return bodyState(this).statusText; }
    get ok() { return bodyState(this).status >= 200 && bodyState(this).status < 300; }
    get headers() { return bodyState(this).headers; }
    get redirected() { return Boolean(bodyState(this).redirected); }
    get type() { return bodyState(this).type; }
    get url() { return bodyState(this).url; }
    get webSocket() { return bodyState(this).webSocket ?? null; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Response.clone: body has already been read");
      const s = bodyState(this);
      let body = s.bytes === null ? null : s.bytes.slice();
      if (s.stream) {
        const [mine, theirs] = s.stream.tee();
        s.stream = mine;
        body = theirs;
      }
      const copy = new Response(body, { status: s.status, statusText: s.statusText, headers: s.headers });
      bodyState(copy).status = s.status;
      return copy;
    }
  }
  tagClasses(Response);
  define("Response", Response);

  // Methods the Fetch spec upper-cases whatever their case (others are kept as written). No
  // non-ASCII character lower-cases into these names, so the lookup matches the spec's.
  const NORMALIZED_METHODS = new Map(
    ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].map((m) => [m.toLowerCase(), m]),
  );
  const REDIRECT_MODES = ["follow", "manual", "error"];
  // Passed by the dispatcher for an incoming request, whose URL the node has serialised already
  // (http::request_url): no app code can reach it, so no app can skip the parse.
  const URL_SERIALISED = {};
  class Request extends Body {
    // (`Request.length` stays 1: it counts the parameters before the first with a default.)
    constructor(input, init = {}, serialised = undefined, givenMethod = "GET", givenHeaders = null, givenBytes = null,
      client = "") {
      if (serialised === URL_SERIALISED) {
        // The dispatcher's own request, in the arguments after `serialised` (no init object: with
        // context reset every request runs this in a fresh context, where an object literal's
        // hidden class is made again and each property read is a miss): the method, the headers
        // (made for this request: taken, not copied), the body's bytes and the address it came
        // from (for its `cf`), nothing else to check.
        super(new RequestState(input, NORMALIZED_METHODS.get(givenMethod.toLowerCase()) ?? givenMethod, givenHeaders,
          givenBytes, null, null, "follow", undefined, client, undefined));
        return;
      }
      let url, method = "GET", headers, bytes = null, signal = null, redirect = "follow";
      let cf, cache;
      if (input instanceof Request) {
        const s = bodyState(input);
        url = s.url; method = s.method; headers = new Headers(s.headers);
        bytes = s.bytes === null ? null : s.bytes.slice();
        signal = s.signal; redirect = s.redirect; cf = input.cf; cache = s.cache;
      } else {
        url = parseUrl(input)[0];
        headers = new Headers();
      }
      if (init.method !== undefined) {
        const m = String(init.method);
        method = NORMALIZED_METHODS.get(m.toLowerCase()) ?? m;
      }
      if (init.headers !== undefined && headers !== init.headers) headers = new Headers(init.headers);
      let type = null;
      let stream = null;
      if (init.body !== undefined) ({ bytes, stream, type } = extractBody(init.body));
      if ((bytes !== null || stream !== null) && (method === "GET" || method === "HEAD")) {
        throw new TypeError(`Request: a ${method} request cannot have a body`);
      }
      if (type && !headers.has("content-type")) headers.set("content-type", type);
      if (init.signal !== undefined && init.signal !== null && !isAbortSignal(init.signal)) {
        throw new TypeError("Request: signal must be an AbortSignal");
      }
      // Without one given, the request's own signal is made when it is first read.
      signal = init.signal ?? signal;
      if (init.redirect !== undefined) redirect = String(init.redirect);
      if (!REDIRECT_MODES.includes(redirect)) {
        throw new TypeError(`Request: redirect must be "follow", "manual" or "error", not ${JSON.stringify(redirect)}`);
      }
      // The cache modes workerd takes (a node has no HTTP cache for subrequests to bypass), and
      // no integrity check: asking for one is an error rather than a check silently skipped.
      if (init.cache !== undefined) {
        cache = String(init.cache);
        if (cache !== "no-store" && cache !== "no-cache") throw new TypeError(`Unsupported cache mode: ${cache}`);
      }
      if (init.integrity !== undefined && init.integrity !== "") {
        throw new TypeError("Subrequest integrity checking is not implemented. The integrity option must be either undefined or an empty string.");
      }
      if (init.cf !== undefined) cf = init.cf;
      if (cf !== undefined) {
        // A copy through JSON, as workerd makes (a function fails JSON.parse there too).
        if (cf === null || (typeof cf !== "object" && typeof cf !== "function")) {
          throw new TypeError("Incorrect type for the 'cf' field on 'RequestInitializerDict': the provided value is not of type 'Object'.");
        }
        cf = JSON.parse(JSON.stringify(cf));
      }
      super(new RequestState(url, method, headers, bytes, stream, signal, redirect, cf, undefined, cache));
    }
    get url() { return bodyState(this).url; }
    get method() { return bodyState(this).method; }
    get headers() { return bodyState(this).headers; }
    get signal() { return (bodyState(this).signal ??= new (eventsApi().AbortSignal)(kState)); }
    get redirect() { return bodyState(this).redirect; }
    get cache() { return bodyState(this).cache; }
    get integrity() { return ""; }
    get keepalive() { return false; }
    // An incoming request's is made at its first read: frozen, holding the address the request
    // came from (`ip:port`), as standalone workerd gives it (Cloudflare's edge adds geography
    // there, which one node does not know). A request the app makes has the `cf` it was given.
    get cf() {
      const s = bodyState(this);
      if (s.cf === undefined && s.client !== undefined) s.cf = Object.freeze({ clientIp: s.client });
      return s.cf;
    }
    clone() {
      if (this.bodyUsed) throw new TypeError("Request.clone: body has already been read");
      const s = bodyState(this);
      const copy = new Request(this);
      // A streamed body is teed: both requests can read it whole.
      if (s.stream) [s.stream, bodyState(copy).stream] = s.stream.tee();
      return copy;
    }
  }
  tagClasses(Request);
  define("Request", Request);

