// SetTimeout/setInterval, queueMicrotask, and their per-request ownership.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- timers and microtasks -----------------------------------------------------------------
  const timers = new Map();
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
  // Both on the global and on its prototype, as on workerd.
  const timerFunctions = {
    setTimeout: (cb, delay, ...args) => startTimer(cb, delay, args, false),
    setInterval: (cb, delay, ...args) => startTimer(cb, delay, args, true),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
  };
  for (const [name, fn] of Object.entries(timerFunctions)) {
    define(name, fn);
    defineOwn(name, fn);
  }
  define("setImmediate", (cb, ...args) => startTimer(cb, 0, args, false));
  define("clearImmediate", clearTimer);
  define("queueMicrotask", (cb) => {
    if (typeof cb !== "function") throw new TypeError("queueMicrotask expects a function");
    Promise.resolve().then(cb);
  });
  function fireTimer(id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    const previous = ops.asyncContext();
    ops.setAsyncContext(timer.frame);
    try {
      timer.callback(...timer.args);
    } catch (err) {
      logError("uncaught exception in timer callback:", err);
    } finally {
      ops.setAsyncContext(previous);
    }
  }

