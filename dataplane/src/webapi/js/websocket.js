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
  const { kState, messageEvent } = helpers;
  const [CONNECTING, OPEN, CLOSING, CLOSED] = [0, 1, 2, 3];
  const kCreate = Symbol("create");
  const encoder = new TextEncoder();
  // Events a socket holds for an app that has not called accept() yet; past them it closes.
  const MAX_HELD_EVENTS = 64;

  class CloseEvent extends Event {
    #code; #reason; #wasClean;
    constructor(type, init = {}) {
      super(type, init);
      this.#code = Number(init.code ?? 0);
      this.#reason = String(init.reason ?? "");
      this.#wasClean = Boolean(init.wasClean);
    }
    get code() { return this.#code; }
    get reason() { return this.#reason; }
    get wasClean() { return this.#wasClean; }
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
  let attach, receive;

  class WebSocket extends EventTarget {
    constructor(url = undefined, protocols = undefined) {
      super();
      if (url !== kCreate) {
        if (typeof url !== "string" && !(url instanceof URL)) {
          throw new TypeError("Failed to construct 'WebSocket': constructor parameter 1 is not of type 'string'.");
        }
        const parsed = new URL(String(url));
        if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
          throw new DOMException("WebSocket Constructor: The url scheme must be ws or wss.", "SyntaxError");
        }
        void protocols;
        throw new DOMException(
          "new WebSocket(url): outgoing WebSocket connections are not supported by NANO yet; " +
            "accept incoming ones with new WebSocketPair()", "NotSupportedError");
      }
      let resolveClosed;
      const closed = new Promise((resolve) => { resolveClosed = resolve; });
      this[kState] = {
        isWebSocket: true, peer: null, accepted: false, readyState: OPEN, binaryType: "blob",
        socket: undefined, pending: [], held: [], closeSent: false, closed, resolveClosed,
        handlers: { open: null, message: null, close: null, error: null },
      };
    }
    get readyState() { return this[kState].readyState; }
    get url() { return null; }
    get protocol() { return ""; }
    get extensions() { return ""; }
    get bufferedAmount() { return 0; }
    get binaryType() { return this[kState].binaryType; }
    set binaryType(value) {
      if (value === "blob" || value === "arraybuffer") this[kState].binaryType = value;
    }

    accept() {
      const state = this[kState];
      if (state.accepted) return;
      state.accepted = true;
      const held = state.held.splice(0);
      for (const event of held) this.#fire(event);
    }

    send(data) {
      const state = this[kState];
      if (!state.accepted) {
        throw new TypeError("You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.");
      }
      if (state.closeSent || state.readyState >= CLOSING) {
        throw new TypeError("Can't call WebSocket send() after close().");
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
      const state = this[kState];
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
        const state = ws[kState];
        state.socket = socket;
        for (const message of state.pending.splice(0)) {
          if (typeof message === "object" && message.close) ops.wsClose(socket, ...message.close);
          else ops.wsSend(socket, message);
        }
        return state.closed;
      };
      // A message from the client (kind 0) or the socket's end (kind 1: code, reason, clean).
      receive = (ws, kind, a, b, c) => {
        const state = ws[kState];
        let event;
        if (kind === 0) {
          let data = a;
          if (typeof a !== "string") data = state.binaryType === "arraybuffer" ? a.buffer : new Blob([a]);
          event = messageEvent({ data });
        } else {
          state.readyState = CLOSED;
          event = new CloseEvent("close", { code: a, reason: b, wasClean: c });
        }
        if (state.accepted) ws.#fire(event);
        else if (state.held.length < MAX_HELD_EVENTS) state.held.push(event);
        else if (kind === 0) ws.close(1011, "the app did not accept() the WebSocket");
        if (kind === 1) state.resolveClosed();
      };
    }

    #fire(event) {
      this.dispatchEvent(event);
      const handler = this[kState].handlers[event.type];
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
      get() { return this[kState].handlers[type]; },
      set(value) { this[kState].handlers[type] = typeof value === "function" ? value : null; },
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
      client[kState].peer = server;
      server[kState].peer = client;
      Object.defineProperty(this, 0, { value: client, enumerable: true });
      Object.defineProperty(this, 1, { value: server, enumerable: true });
    }
  }

  return { WebSocket, WebSocketPair, CloseEvent, ErrorEvent, internals: { attach, receive } };
});
