// Fetch() subrequests.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- fetch (subrequests) -----------------------------------------------------------------------
  const pendingFetches = new Map();
  async function fetch(input, init = undefined) {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    // A signal nobody read was never made, so it cannot abort (see Request's signal).
    const state = bodyState(request);
    const { signal, redirect } = state;
    signal?.throwIfAborted();
    if (String(request.headers.get("upgrade") ?? "").toLowerCase() === "websocket") {
      // A WebSocket to the URL (js/websocket.js): the response's webSocket needs accept().
      const protocols = request.headers.get("sec-websocket-protocol");
      const list = protocols === null ? [] : protocols.split(",").map((p) => p.trim()).filter(Boolean);
      const ws = await websockets().internals.fetchUpgrade(request.url, list);
      return new Response(null, { status: 101, webSocket: ws });
    }
    // A stream body (an app's own stream, another request's `body`, a FixedLengthStream's
    // readable) is read whole first and sent with its length: the subrequest op takes bytes.
    const bytes = state.stream ? await takeBody(request, "fetch()") : state.bytes;
    const flat = [];
    for (const [k, v] of headerList(request.headers)) flat.push(k, v);
    const id = ops.fetchStart(request.method, request.url, flat, bytes, redirect);
    return new Promise((resolve, reject) => {
      pendingFetches.set(id, { resolve, reject });
      signal?.addEventListener("abort", () => {
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
    const list = headerList(headers);
    for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
    const nullBody = NULL_BODY_STATUS.has(status) || status < 200;
    const response = new Response(nullBody ? null : body, { status: status < 200 ? 200 : status, statusText, headers });
    bodyState(response).status = status;
    bodyState(response).url = url;
    bodyState(response).redirected = redirected;
    freezeHeaders(headers);
    pending.resolve(response);
  }
  define("fetch", fetch);

  // ---- Cache API ---------------------------------------------------------------------------------
  // js/cache.js, compiled into a context when it first reads caches, Cache or CacheStorage.
  let cacheApi = null;
  const cacheGlobals = () =>
    (cacheApi ??= ops.lazyScript("cache")(ops, { bodyState, headerList, freezeHeaders, tagClasses, Request, Response, Headers,
      NULL_BODY_STATUS }));
  lazyGlobal(["Cache", "CacheStorage"], cacheGlobals);
  lazyGlobal(["caches"], cacheGlobals, { on: OWN });

  // ---- WebSockets --------------------------------------------------------------------------------
  // js/websocket.js, compiled into a context when it first reads one of its globals. The
  // dispatcher accepts a 101 with its webSocket and routes the socket's events (dispatch.js).
  let wsApi = null;
  const websockets = () => (wsApi ??= ops.lazyScript("websocket")(ops, {
    messageEvent: (init) => new (extra("MessageEvent"))("message", init),
    // Sockets the app opens get their events through the dispatcher's map (dispatch.js).
    register: (socket, ws) => openSockets.set(socket, ws),
    unregister: (socket) => openSockets.delete(socket),
    tagClasses,
  }));
  lazyGlobal(["WebSocket", "WebSocketPair", "CloseEvent", "ErrorEvent"], websockets);

