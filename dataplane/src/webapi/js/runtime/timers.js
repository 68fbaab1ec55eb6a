// The timers (the Web ones on the global's prototype, Node's own on the global), queueMicrotask, and
// their per-request ownership.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- timers and microtasks -----------------------------------------------------------------
  const timers = new Map();
  const reflectApply = Reflect.apply;
  function startTimer(callback, delay, args, repeat) {
    if (typeof callback !== "function") {
      throw new TypeError("timer callback must be a function (strings are not evaluated)");
    }
    const ms = Math.max(0, Number(delay) || 0);
    const id = ops.timerStart(ms, repeat);
    // The callback runs in the async context (AsyncLocalStorage) of the code that set it.
    timers.set(id, { callback, args, repeat, frame: ops.asyncContext() });
    return id;
  }
  function clearTimer(id) {
    if (timers.delete(id)) ops.timerCancel(id);
  }
  // As on workerd: the global's prototype has the Web timers, which answer a number; the
  // global's own setTimeout/setInterval/clearTimeout/clearInterval are Node's (nodeTimers, below),
  // made at their first read. setImmediate answers an Immediate.
  const webTimers = {
    setTimeout(callback = undefined, delay = 0, ...args) { return startTimer(callback, delay, args, false); },
    setInterval(callback = undefined, delay = 0, ...args) { return startTimer(callback, delay, args, true); },
    clearTimeout(id = undefined) { clearTimer(id); },
    clearInterval(id = undefined) { clearTimer(id); },
    setImmediate(callback = undefined, ...args) {
      return new (nodeTimers().Immediate)(startTimer(callback, 0, args, false));
    },
    clearImmediate(immediate = undefined) { clearTimer(nodeTimers().immediateId(immediate)); },
    queueMicrotask(callback = undefined) {
      if (typeof callback !== "function") throw new TypeError("queueMicrotask expects a function");
      Promise.resolve().then(callback);
    },
  };
  for (const name of Object.keys(webTimers)) define(name, webTimers[name]);
  let nodeTimerApi = null;
  const nodeTimers = () => (nodeTimerApi ??= makeNodeTimers());
  lazyGlobal(["setTimeout", "setInterval", "clearTimeout", "clearInterval"], nodeTimers, { on: OWN });
  function makeNodeTimers() {
    // Node's argument error, as workerd's Node layer throws it (the Node layer's buffer tier
    // makes it: on this path only).
    const callbackError = (value) => {
      const { typeError, received } = bufferTier();
      return typeError("ERR_INVALID_ARG_TYPE", `The "callback" argument must be of type function.${received(value)}`);
    };
    let timeoutId;
    // What Node's setTimeout and setInterval answer: the timer, restartable. A request does not
    // wait for its timers anyway, so ref/unref only record the flag. A number where one is
    // wanted (`+timeout`, a template string) is its id.
    class Timeout {
      #id; #callback; #delay; #args; #repeat; #refed = true;
      constructor(callback, delay = 1, args = [], repeat = false) {
        if (typeof callback !== "function") throw callbackError(callback);
        this.#callback = callback;
        this.#delay = delay;
        this.#args = args;
        this.#repeat = repeat;
        this.#id = startTimer(callback, delay, args, repeat);
      }
      static {
        timeoutId = (timeout) => (#id in timeout ? timeout.#id : undefined);
      }
      close() {
        clearTimer(this.#id);
        return this;
      }
      hasRef() { return this.#refed; }
      ref() {
        this.#refed = true;
        return this;
      }
      unref() {
        this.#refed = false;
        return this;
      }
      // Starts the timer again from now (again after it fired, as Node's does).
      refresh() {
        clearTimer(this.#id);
        this.#id = startTimer(this.#callback, this.#delay, this.#args, this.#repeat);
        return this;
      }
      [Symbol.dispose]() { this.close(); }
      [Symbol.toPrimitive]() { return this.#id; }
    }
    // What setImmediate answers, as workerd's (its own class there: no number in it, never
    // ref'd).
    let immediateId;
    class Immediate {
      #id;
      constructor(id) { this.#id = id; }
      static {
        immediateId = (value) => (value !== null && typeof value === "object" && #id in value ? value.#id : value);
      }
      hasRef() { return false; }
      ref() {}
      unref() {}
      [Symbol.dispose]() { clearTimer(this.#id); }
    }
    tagClasses(Immediate);
    const clear = (timer) => {
      if (timer !== null && typeof timer === "object") {
        const id = timeoutId(timer);
        if (id !== undefined) clearTimer(id);
      } else if (typeof timer === "number" || typeof timer === "string") {
        clearTimer(Number(timer));
      }
    };
    return {
      setTimeout: function setTimeout(callback, delay, ...args) { return new Timeout(callback, delay, args, false); },
      setInterval: function setInterval(callback, delay, ...args) { return new Timeout(callback, delay, args, true); },
      clearTimeout: function clearTimeout(timer) { clear(timer); },
      clearInterval: function clearInterval(timer) { clear(timer); },
      Immediate,
      immediateId,
    };
  }
  function fireTimer(id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    const previous = ops.asyncContext();
    ops.setAsyncContext(timer.frame);
    try {
      // With the global as `this`, as on workerd.
      reflectApply(timer.callback, globalThis, timer.args);
    } catch (err) {
      logError("uncaught exception in timer callback:", err);
    } finally {
      ops.setAsyncContext(previous);
    }
  }

