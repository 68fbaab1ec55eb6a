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
    class DOMException extends Error {
      #name;
      constructor(message = "", name = "Error") {
        super(String(message));
        this.#name = String(name);
      }
      get name() { return this.#name; }
      get code() { return DOM_CODES[this.#name] ?? 0; }
    }
    return DOMException;
  }

  // Events and abort signals are made in a context the first time it reads one of these globals
  // or needs them itself (a request's signal, read); until then a reset-on request does not
  // deserialise them with its context.
  let events = null;
  const eventsApi = () => (events ??= makeEvents());
  const isAbortSignal = (value) => events !== null && value instanceof events.AbortSignal;
  lazyGlobal(["Event", "CustomEvent", "EventTarget", "AbortSignal", "AbortController"], eventsApi);
  function makeEvents() {
    class Event {
      #type; #cancelable; #defaultPrevented = false; #stopped = false; #target = null; #timeStamp;
      constructor(type, init = {}) {
        if (arguments.length === 0) throw new TypeError("Event: the type argument is required");
        this.#type = String(type);
        this.#cancelable = Boolean(init.cancelable);
        this.#timeStamp = ops.now();
      }
      get type() { return this.#type; }
      get target() { return this.#target; }
      get currentTarget() { return this.#target; }
      get cancelable() { return this.#cancelable; }
      get defaultPrevented() { return this.#defaultPrevented; }
      get timeStamp() { return this.#timeStamp; }
      preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
      stopImmediatePropagation() { this.#stopped = true; }
      stopPropagation() {}
      static [kState](event, target) { event.#target = target; return () => event.#stopped; }
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
        const stopped = Event[kState](event, this);
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
      #aborted = false; #reason = undefined;
      onabort = null;
      constructor(key) {
        super();
        if (key !== kState) throw new TypeError("AbortSignal cannot be constructed; use AbortController");
      }
      get aborted() { return this.#aborted; }
      get reason() { return this.#reason; }
      throwIfAborted() { if (this.#aborted) throw this.#reason; }
      static [kState](signal, reason) {
        if (signal.#aborted) return;
        signal.#aborted = true;
        signal.#reason = reason === undefined ? new (domException())("This operation was aborted", "AbortError") : reason;
        const event = new Event("abort");
        if (typeof signal.onabort === "function") signal.onabort.call(signal, event);
        signal.dispatchEvent(event);
      }
      static abort(reason) {
        const signal = new AbortSignal(kState);
        AbortSignal[kState](signal, reason);
        return signal;
      }
      static timeout(ms) {
        const signal = new AbortSignal(kState);
        setTimeout(() => AbortSignal[kState](signal, new (domException())("The operation timed out", "TimeoutError")), ms);
        return signal;
      }
      static any(signals) {
        const signal = new AbortSignal(kState);
        for (const s of signals) {
          if (s.aborted) { AbortSignal[kState](signal, s.reason); break; }
          s.addEventListener("abort", () => AbortSignal[kState](signal, s.reason), { once: true });
        }
        return signal;
      }
    }
    class AbortController {
      #signal = new AbortSignal(kState);
      get signal() { return this.#signal; }
      abort(reason) { AbortSignal[kState](this.#signal, reason); }
    }
    return { Event, CustomEvent, EventTarget, AbortSignal, AbortController };
  }
