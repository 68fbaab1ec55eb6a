// DOMException, Event, EventTarget, AbortController/AbortSignal.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- DOMException, events, abort --------------------------------------------------------------
  // DOMException is made in a context the first time the runtime throws one or the app reads it.
  let domExceptionClass = null;
  const domException = () => (domExceptionClass ??= makeDomException());
  lazyGlobal(["DOMException"], () => ({ DOMException: domException() }));
  function makeDomException() {
    const DOM_CODES = { IndexSizeError: 1, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
      SyntaxError: 12, InvalidCharacterError: 5, NetworkError: 19, AbortError: 20, TimeoutError: 23,
      QuotaExceededError: 22, DataCloneError: 25 };
    // As on workerd, code, name, message and stack are the instance's own enumerable members, in
    // that order (JSON.stringify shows them).
    class DOMException extends Error {
      constructor(message = "", name = "Error") {
        super(String(message));
        const stack = Object.getOwnPropertyDescriptor(this, "stack");
        delete this.stack;
        delete this.message;
        const text = String(name);
        for (const [member, value] of [["code", DOM_CODES[text] ?? 0], ["name", text], ["message", String(message)]]) {
          Object.defineProperty(this, member, { value, writable: false, enumerable: true, configurable: true });
        }
        if (stack) Object.defineProperty(this, "stack", { ...stack, enumerable: true });
      }
    }
    tagClasses(DOMException);
    // The legacy code constants, on the class and its prototype (as WebIDL constants are).
    const LEGACY = ["INDEX_SIZE_ERR", "DOMSTRING_SIZE_ERR", "HIERARCHY_REQUEST_ERR", "WRONG_DOCUMENT_ERR",
      "INVALID_CHARACTER_ERR", "NO_DATA_ALLOWED_ERR", "NO_MODIFICATION_ALLOWED_ERR", "NOT_FOUND_ERR", "NOT_SUPPORTED_ERR",
      "INUSE_ATTRIBUTE_ERR", "INVALID_STATE_ERR", "SYNTAX_ERR", "INVALID_MODIFICATION_ERR", "NAMESPACE_ERR",
      "INVALID_ACCESS_ERR", "VALIDATION_ERR", "TYPE_MISMATCH_ERR", "SECURITY_ERR", "NETWORK_ERR", "ABORT_ERR",
      "URL_MISMATCH_ERR", "QUOTA_EXCEEDED_ERR", "TIMEOUT_ERR", "INVALID_NODE_TYPE_ERR", "DATA_CLONE_ERR"];
    for (let i = 0; i < LEGACY.length; i++) {
      for (const target of [DOMException, DOMException.prototype]) {
        Object.defineProperty(target, LEGACY[i], { value: i + 1, enumerable: true, configurable: true });
      }
    }
    return DOMException;
  }

  // Events and abort signals are made in a context the first time it reads one of these globals
  // or needs them itself (a request's signal, read); until then a reset-on request does not
  // deserialise them with its context.
  let events = null;
  const eventsApi = () => (events ??= makeEvents());
  const isAbortSignal = (value) => events !== null && value instanceof events.AbortSignal;
  lazyGlobal(["Event", "CustomEvent", "AbortSignal", "AbortController"], eventsApi);
  lazyGlobal(["EventTarget"], eventsApi, { on: WORKER_SCOPE });
  function makeEvents() {
    // Dispatch begins at `target` (answers whether a listener stopped it), or ends (null).
    let dispatching;
    // Aborts `signal` with `reason` (once).
    let abortSignal;
    // One target, no tree: an event is at its target (AT_TARGET) while it is dispatched, and its
    // path is that target.
    class Event {
      #type; #cancelable; #bubbles; #composed; #defaultPrevented = false; #stopped = false; #propagationStopped = false;
      #target = null; #dispatching = false; #timeStamp;
      constructor(type, init = {}) {
        if (arguments.length === 0) throw new TypeError("Event: the type argument is required");
        this.#type = String(type);
        this.#cancelable = Boolean(init?.cancelable);
        this.#bubbles = Boolean(init?.bubbles);
        this.#composed = Boolean(init?.composed);
        this.#timeStamp = ops.now();
      }
      get type() { return this.#type; }
      get target() { return this.#target; }
      get srcElement() { return this.#target ?? undefined; }
      get currentTarget() { return this.#target; }
      get cancelable() { return this.#cancelable; }
      get bubbles() { return this.#bubbles; }
      get composed() { return this.#composed; }
      get eventPhase() { return this.#dispatching ? 2 : 0; }
      get isTrusted() { return false; }
      get defaultPrevented() { return this.#defaultPrevented; }
      get returnValue() { return !this.#defaultPrevented; }
      get cancelBubble() { return this.#propagationStopped; }
      set cancelBubble(value) { if (value) this.#propagationStopped = true; }
      get timeStamp() { return this.#timeStamp; }
      composedPath() { return this.#dispatching ? [this.#target] : []; }
      preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
      stopImmediatePropagation() { this.#stopped = true; this.#propagationStopped = true; }
      stopPropagation() { this.#propagationStopped = true; }
      static {
        dispatching = (event, target) => {
          event.#dispatching = target !== null;
          if (target !== null) event.#target = target;
          return () => event.#stopped;
        };
      }
    }
    for (const [name, value] of [["NONE", 0], ["CAPTURING_PHASE", 1], ["AT_TARGET", 2], ["BUBBLING_PHASE", 3]]) {
      for (const target of [Event, Event.prototype]) {
        Object.defineProperty(target, name, { value, enumerable: true, configurable: true });
      }
    }
    class EventTarget {
      #listeners = new Map();
      addEventListener(type, listener, options = {}) {
        if (listener === null || listener === undefined) return;
        const list = this.#listeners.get(type) ?? [];
        if (list.some((l) => l.listener === listener)) return;
        const once = typeof options === "object" && Boolean(options.once);
        const signal = typeof options === "object" ? options.signal : undefined;
        if (signal?.aborted) return;
        list.push({ listener, once });
        this.#listeners.set(type, list);
        signal?.addEventListener("abort", () => this.removeEventListener(type, listener));
      }
      removeEventListener(type, listener) {
        const list = this.#listeners.get(type);
        if (list) this.#listeners.set(type, list.filter((l) => l.listener !== listener));
      }
      dispatchEvent(event) {
        if (!(event instanceof Event)) throw new TypeError("dispatchEvent: expected an Event");
        const stopped = dispatching(event, this);
        for (const entry of [...(this.#listeners.get(event.type) ?? [])]) {
          if (entry.once) this.removeEventListener(event.type, entry.listener);
          try {
            if (typeof entry.listener === "function") entry.listener.call(this, event);
            else entry.listener.handleEvent(event);
          } catch (err) {
            logError("uncaught exception in an event listener:", err);
          }
          if (stopped()) break;
        }
        dispatching(event, null);
        return !event.defaultPrevented;
      }
    }

    class CustomEvent extends Event {
      #detail;
      constructor(type, init = {}) {
        super(type, init);
        // workerd leaves an absent detail undefined (the DOM standard says null).
        this.#detail = init?.detail;
      }
      get detail() { return this.#detail; }
    }

    class AbortSignal extends EventTarget {
      #aborted = false; #reason = undefined; #onabort = null;
      constructor(key) {
        super();
        if (key !== kState) throw new TypeError("AbortSignal cannot be constructed; use AbortController");
      }
      get aborted() { return this.#aborted; }
      get reason() { return this.#reason; }
      throwIfAborted() { if (this.#aborted) throw this.#reason; }
      static {
        abortSignal = (signal, reason) => {
          if (signal.#aborted) return;
          signal.#aborted = true;
          signal.#reason = reason === undefined ? new (domException())("This operation was aborted", "AbortError") : reason;
          const event = new Event("abort");
          if (typeof signal.#onabort === "function") signal.#onabort.call(signal, event);
          signal.dispatchEvent(event);
        };
      }
      get onabort() { return this.#onabort; }
      set onabort(value) { this.#onabort = typeof value === "function" || (typeof value === "object" && value !== null) ? value : null; }
      static abort(reason) {
        const signal = new AbortSignal(kState);
        abortSignal(signal, reason);
        return signal;
      }
      static timeout(ms) {
        const signal = new AbortSignal(kState);
        // The runtime's timer, not the global an app may have replaced (as workerd's native one).
        startTimer(() => abortSignal(signal, new (domException())("The operation timed out", "TimeoutError")), ms, [], false);
        return signal;
      }
      static any(signals) {
        const signal = new AbortSignal(kState);
        for (const s of signals) {
          if (s.aborted) { abortSignal(signal, s.reason); break; }
          s.addEventListener("abort", () => abortSignal(signal, s.reason), { once: true });
        }
        return signal;
      }
    }
    class AbortController {
      #signal = new AbortSignal(kState);
      get signal() { return this.#signal; }
      abort(reason) { abortSignal(this.#signal, reason); }
    }
    tagClasses(Event, CustomEvent, EventTarget, AbortSignal, AbortController);
    return { Event, CustomEvent, EventTarget, AbortSignal, AbortController };
  }
