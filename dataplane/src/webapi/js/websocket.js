// NANO runtime glue: WebSockets the Workers way (WebSocketPair, WebSocket, CloseEvent,
// ErrorEvent), compiled into a context only when it first reads one of them (runtime/fetch.js
// defines them as lazy globals). An app answers an upgrade with
//   const [client, server] = Object.values(new WebSocketPair());
//   server.accept();
//   return new Response(null, { status: 101, webSocket: client });
// The dispatcher (runtime/dispatch.js) hands the 101 to the wsAccept op, which gives the socket
// an id; from then on server.send/close go to the wsSend/wsClose ops, and the client's messages
// and the socket's end come back through the dispatcher's socketEvent.
(function websockets(ops, helpers) {
  "use strict";
  const { messageEvent, register, unregister, tagClasses } = helpers;
  // Each socket's state, where no app reaches it (the map's methods are taken now: an app that
  // replaces WeakMap.prototype.get later does not change what this reads).
  const sockets = new WeakMap();
  const internal = Function.prototype.call.bind(WeakMap.prototype.get, sockets);
  const setInternal = Function.prototype.call.bind(WeakMap.prototype.set, sockets);
  const [CONNECTING, OPEN, CLOSING, CLOSED] = [0, 1, 2, 3];
  const kCreate = Symbol("create");
  const encoder = new TextEncoder();
  // Events a socket holds for an app that has not called accept() yet; past them it closes.
  const MAX_HELD_EVENTS = 64;

  // Its members are own read-only properties, as on workerd.
  class CloseEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      const members = [["wasClean", Boolean(init.wasClean)], ["reason", String(init.reason ?? "")], ["code", Number(init.code ?? 0)]];
      for (const [name, value] of members) {
        Object.defineProperty(this, name, { value, writable: false, enumerable: true, configurable: true });
      }
    }
  }
  class ErrorEvent extends Event {
    #message; #error;
    constructor(type, init = {}) {
      super(type, init);
      this.#message = String(init.message ?? "");
      this.#error = init.error;
    }
    get message() { return this.#message; }
    get error() { return this.#error; }
    get filename() { return ""; }
    get lineno() { return 0; }
    get colno() { return 0; }
  }

  const invalid = (message) => new DOMException(message, "InvalidAccessError");
  // The dispatcher's hooks (set in the class's static block, where #fire is reachable): attach
  // an accepted end to its socket id, and hand it an event.
  let attach, receive, dial;

  class WebSocket extends EventTarget {
    constructor(url = undefined, protocols = undefined) {
      super();
      let resolveClosed;
      const closed = new Promise((resolve) => { resolveClosed = resolve; });
      setInternal(this, {
        isWebSocket: true, peer: null, accepted: false, readyState: OPEN, binaryType: "blob",
        socket: undefined, pending: [], held: [], closeSent: false, closed, resolveClosed,
        url: null, protocol: "", opened: null,
        handlers: { open: null, message: null, close: null, error: null },
      });
      if (url === kCreate) return;
      // An outgoing socket (client side): connected by the worker, under fetch()'s SSRF guard
      // and subrequest cap; events fire without accept().
      if (typeof url !== "string" && !(url instanceof URL)) {
        throw new TypeError("Failed to construct 'WebSocket': constructor parameter 1 is not of type 'string'.");
      }
      const parsed = new URL(String(url));
      if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
        throw new DOMException("WebSocket Constructor: The url scheme must be ws or wss.", "SyntaxError");
      }
      dial(this, parsed.href, protocols, true);
    }
    get readyState() { return internal(this).readyState; }
    get url() { return internal(this).url; }
    get protocol() { return internal(this).protocol; }
    get extensions() { return ""; }
    get bufferedAmount() { return 0; }
    get binaryType() { return internal(this).binaryType; }
    set binaryType(value) {
      if (value === "blob" || value === "arraybuffer") internal(this).binaryType = value;
    }

    accept() {
      const state = internal(this);
      if (state.accepted) return;
      state.accepted = true;
      const held = state.held.splice(0);
      for (const event of held) this.#fire(event);
    }

    send(data) {
      const state = internal(this);
      if (!state.accepted) {
        throw new TypeError("You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.");
      }
      if (state.closeSent || state.readyState >= CLOSING) {
        throw new TypeError("Can't call WebSocket send() after close().");
      }
      if (state.readyState === CONNECTING) {
        throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", "InvalidStateError");
      }
      let message;
      if (typeof data === "string") message = data;
      else if (data instanceof ArrayBuffer) message = new Uint8Array(data.slice(0));
      else if (ArrayBuffer.isView(data)) message = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      else message = String(data);
      if (state.socket === undefined) state.pending.push(message);
      else ops.wsSend(state.socket, message);
    }

    close(code = undefined, reason = undefined) {
      if (code !== undefined) {
        code = Number(code);
        if (!(code === 1000 || (code >= 3000 && code <= 4999))) throw invalid(`Invalid WebSocket close code: ${code}.`);
      }
      reason = reason === undefined ? "" : String(reason);
      if (encoder.encode(reason).length > 123) {
        throw invalid("WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.");
      }
      const state = internal(this);
      if (state.closeSent || state.readyState >= CLOSING) return;
      state.closeSent = true;
      state.readyState = CLOSING;
      if (state.socket === undefined) state.pending.push({ close: [code ?? 1000, reason] });
      else ops.wsClose(state.socket, code ?? 1000, reason);
    }

    static {
      // Once the 101 went out with the peer of this end: what was sent before goes now; the
      // promise settles when the socket closes.
      attach = (ws, socket) => {
        const state = internal(ws);
        state.socket = socket;
        for (const message of state.pending.splice(0)) {
          if (typeof message === "object" && message.close) ops.wsClose(socket, ...message.close);
          else ops.wsSend(socket, message);
        }
        return state.closed;
      };
      // A message from the other side (kind 0), the socket's end (kind 1: code, reason,
      // clean) or, for a socket the app opened, its connection (kind 2: the subprotocol).
      receive = (ws, kind, a, b, c) => {
        const state = internal(ws);
        let event;
        if (kind === 2) {
          state.readyState = OPEN;
          state.protocol = a;
          state.opened?.resolve();
          event = new Event("open");
        } else if (kind === 0) {
          let data = a;
          if (typeof a !== "string") data = state.binaryType === "arraybuffer" ? a.buffer : new Blob([a]);
          event = messageEvent({ data });
        } else {
          // A socket the app opened that never connected: an error event first, as in browsers.
          if (state.readyState === CONNECTING) {
            state.opened?.reject(new TypeError(b));
            const error = new ErrorEvent("error", { message: b });
            if (state.accepted) ws.#fire(error);
            else state.held.push(error);
          }
          state.readyState = CLOSED;
          event = new CloseEvent("close", { code: a, reason: b, wasClean: c });
        }
        if (state.accepted) ws.#fire(event);
        else if (state.held.length < MAX_HELD_EVENTS) state.held.push(event);
        else if (kind === 0) ws.close(1011, "the app did not accept() the WebSocket");
        if (kind === 1) {
          if (state.url !== null) unregister(state.socket);
          state.resolveClosed();
        }
      };
      // Opens an outgoing socket for `ws` (new WebSocket, or fetch() with Upgrade: websocket,
      // whose socket waits for accept() as on workerd).
      dial = (ws, url, protocols, accepted) => {
        const state = internal(ws);
        const list = protocols === undefined ? [] : (Array.isArray(protocols) ? protocols : [protocols]).map(String);
        const socket = ops.wsConnect(url, list.join(", "));
        state.readyState = CONNECTING;
        state.accepted = accepted;
        state.url = url;
        state.socket = socket;
        register(socket, ws);
        let resolve, reject;
        const opened = new Promise((res, rej) => { resolve = res; reject = rej; });
        opened.catch(() => {});
        state.opened = { resolve, reject, promise: opened };
        return opened;
      };
    }

    #fire(event) {
      this.dispatchEvent(event);
      const handler = internal(this).handlers[event.type];
      if (typeof handler === "function") {
        try {
          handler.call(this, event);
        } catch (err) {
          console.error("uncaught exception in a WebSocket event handler:", err);
        }
      }
    }
  }
  for (const type of ["open", "message", "close", "error"]) {
    Object.defineProperty(WebSocket.prototype, `on${type}`, {
      get() { return internal(this).handlers[type]; },
      set(value) { internal(this).handlers[type] = typeof value === "function" ? value : null; },
      configurable: true, enumerable: false,
    });
  }
  for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSING", CLOSING], ["CLOSED", CLOSED]]) {
    for (const target of [WebSocket, WebSocket.prototype]) {
      Object.defineProperty(target, name, { value, enumerable: true });
      Object.defineProperty(target, `READY_STATE_${name}`, { value, enumerable: true });
    }
  }

  class WebSocketPair {
    constructor() {
      const client = new WebSocket(kCreate);
      const server = new WebSocket(kCreate);
      internal(client).peer = server;
      internal(server).peer = client;
      Object.defineProperty(this, 0, { value: client, enumerable: true });
      Object.defineProperty(this, 1, { value: server, enumerable: true });
    }
    // const [client, server] = new WebSocketPair(), as on workerd.
    *[Symbol.iterator]() {
      yield this[0];
      yield this[1];
    }
  }

  // fetch(url, { headers: { Upgrade: "websocket" } }): a 101 whose webSocket is connected;
  // rejects (TypeError) when it cannot connect.
  const fetchUpgrade = async (url, protocols) => {
    const ws = new WebSocket(kCreate);
    await dial(ws, url, protocols, false);
    return ws;
  };

  tagClasses(WebSocket, WebSocketPair, CloseEvent, ErrorEvent);
  return {
    WebSocket, WebSocketPair, CloseEvent, ErrorEvent,
    internals: {
      attach, receive, fetchUpgrade,
      isWebSocket: (value) => internal(value)?.isWebSocket === true,
      // The other end of a WebSocketPair's end (null for a socket of fetch() or new WebSocket).
      peerOf: (ws) => internal(ws).peer,
    },
  };
});
