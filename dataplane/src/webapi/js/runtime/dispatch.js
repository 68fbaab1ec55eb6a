// Handler registration and request dispatch, and what the bootstrap returns.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- handler registration and dispatch -----------------------------------------------------
  const fetchListeners = [];
  let defaultHandler = null;
  // The global is an event target, as on workerd (its prototype chain ends in these methods: see
  // head.js). A "fetch" listener is the app's handler (the service-worker syntax); other events
  // go to a target made when first needed.
  let globalEvents = null;
  const globalTarget = () => (globalEvents ??= new (eventsApi().EventTarget)());
  Object.assign(targetProto, {
    addEventListener(type, listener, options = undefined) {
      if (type !== "fetch") return globalTarget().addEventListener(type, listener, options);
      if (typeof listener === "function" && !fetchListeners.includes(listener)) fetchListeners.push(listener);
    },
    removeEventListener(type, listener, options = undefined) {
      if (type !== "fetch") return globalEvents?.removeEventListener(type, listener, options);
      const i = fetchListeners.indexOf(listener);
      if (i >= 0) fetchListeners.splice(i, 1);
    },
    dispatchEvent(event) {
      return globalTarget().dispatchEvent(event);
    },
  });

  // The event a listener app's handler gets; made in a context the first time one is needed.
  let fetchEventClass = null;
  const fetchEventApi = () => (fetchEventClass ??= makeFetchEvent());
  // Whether the event was answered, and with what (the dispatcher's view of a FetchEvent).
  let answerOf;
  function makeFetchEvent() {
    class FetchEvent {
      #request; #ctx; #answer = { responded: false, response: undefined };
      constructor(request, ctx) { this.#request = request; this.#ctx = ctx; }
      static {
        answerOf = (event) => event.#answer;
      }
      get type() { return "fetch"; }
      get request() { return this.#request; }
      respondWith(response) {
        if (this.#answer.responded) throw new Error("FetchEvent.respondWith() was already called");
        this.#answer.responded = true;
        this.#answer.response = response;
      }
      waitUntil(promise) { this.#ctx.waitUntil(promise); }
      passThroughOnException() {}
    }
    return FetchEvent;
  }

  class ExecutionContext {
    #waits;
    constructor(waits) { this.#waits = waits; }
    waitUntil(promise) { this.#waits.push(Promise.resolve(promise)); }
    passThroughOnException() {}
  }
  // What the runtime itself keeps a request running for (navigator.sendBeacon), by request id,
  // from whichever request's JS is running; made at the first use, so a request that sends no
  // beacon never touches it.
  let runtimeWaits = null;
  const waitUntilCurrent = (promise) => {
    const id = ops.currentRequest();
    if (id === undefined) return;
    runtimeWaits ??= new Map();
    const list = runtimeWaits.get(id);
    if (list === undefined) runtimeWaits.set(id, [promise]);
    else list.push(promise);
  };

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

  // Accepted WebSockets of this context by socket id: the worker hands their events here.
  const openSockets = new Map();
  function socketEvent(socket, kind, a, b, c) {
    const ws = openSockets.get(socket);
    if (ws !== undefined) wsApi.internals.receive(ws, kind, a, b, c);
  }

  async function handle(id, request, env, ctx) {
    let result;
    try {
      if (defaultHandler !== null) {
        result = await defaultHandler.fetch(request, env, ctx);
      } else {
        const event = new (fetchEventApi())(request, ctx);
        for (const listener of fetchListeners) {
          listener.call(globalThis, event);
          if (answerOf(event).responded) break;
        }
        if (!answerOf(event).responded) {
          throw new Error("no fetch listener called event.respondWith()");
        }
        result = await answerOf(event).response;
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
    const s = bodyState(result);
    const flat = [];
    for (const [k, v] of headerList(s.headers)) flat.push(k, v);
    if (s.webSocket) {
      // A WebSocket accepted: the front answers 101 and the request lasts until it closes.
      const server = wsApi.internals.peerOf(s.webSocket);
      if (server === null) {
        ops.fail(id, "bad-response", "the response's webSocket is not the client end of a WebSocketPair " +
          "(a socket from fetch() or new WebSocket cannot be returned: relay it through a WebSocketPair)", "");
        return;
      }
      const socket = ops.wsAccept(id, flat);
      if (socket === undefined) return;
      openSockets.set(socket, server);
      try {
        await wsApi.internals.attach(server, socket);
      } finally {
        openSockets.delete(socket);
      }
      return;
    }
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
    // A FixedLengthStream's readable goes out with its Content-Length.
    ops.respondStream(id, s.status, flat, streams.expectedLength(s.stream));
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
      logError("the response stream failed:", message);
      ops.streamEnd(id, message);
    }
  }

  function dispatch(id, method, url, flatHeaders, body, env, client) {
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
    const list = headerList(headers);
    for (let i = 0; i < flatHeaders.length; i += 2) list.push([flatHeaders[i], flatHeaders[i + 1]]);
    const request = new Request(url, undefined, URL_SERIALISED, method, headers, body, client);
    freezeHeaders(request.headers);
    const waits = [];
    const ctx = new ExecutionContext(waits);
    handle(id, request, env, ctx)
      .then(async () => {
        for (let seen = 0; ; ) {
          const runtime = runtimeWaits?.get(id);
          if (runtime !== undefined) {
            runtimeWaits.delete(id);
            for (const promise of runtime) waits.push(promise);
          }
          if (seen >= waits.length) break;
          const batch = waits.slice(seen);
          seen = waits.length;
          await Promise.allSettled(batch);
        }
      })
      .finally(() => ops.done(id));
  }

  // The request path, run once as the snapshot is made: an app with context reset deserialises
  // a fresh context for every request, and in it the first Request, Response and Headers built
  // would each make their hidden classes (V8's maps) and transitions again. Made here and kept
  // alive (`warmed`, in the internals, which no app reaches), they are in the snapshot: a fresh
  // context finds them. The same objects as a request makes, with the same kinds of values.
  const warmed = [];
  {
    const headers = new Headers();
    headerList(headers).push(["host", "snapshot.local"]);
    const request = new Request("http://snapshot.local/", undefined, URL_SERIALISED, "GET", headers, null, "127.0.0.1");
    freezeHeaders(request.headers);
    const response = new Response("");
    const flat = [];
    for (const [k, v] of headerList(bodyState(response).headers)) flat.push(k, v);
    // What Response("") extracted from its body it dropped: one is kept here too, or its hidden
    // classes would not be in the snapshot (V8 clears a transition to a map no live object has,
    // and a fresh context would make them again).
    warmed.push(request, response, new ExecutionContext([]), extractBody(""));
  }

  return { register, dispatch, fireTimer, fetchDone, socketEvent, setWasm, lazyGlobals, makeLazyGlobal, warmed };
});
