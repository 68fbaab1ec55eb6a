// Globals compiled on first use (js/extras.js), scheduler, performance, navigator.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- globals compiled on first use ---------------------------------------------------------
  // Compression streams, URLPattern, MessageChannel and the queuing strategies live in
  // js/extras.js, compiled into a context only when the context first reads one of them (the
  // lazyScript op): a reset-on request deserialises its whole context, so what an app does not
  // use must not be in it. An app whose source names one gets them in its snapshot instead.
  let extras = null;
  const extrasApi = () => (extras ??= ops.lazyScript("extras")(ops, { kState, toBytes, feedCodec, tagClasses }));
  const extra = (name) => extrasApi()[name];
  lazyGlobal(["CompressionStream", "DecompressionStream", "URLPattern", "MessageEvent", "MessagePort",
    "MessageChannel", "ByteLengthQueuingStrategy", "CountQueuingStrategy"], extrasApi);

  // ---- scheduler, performance, navigator ---------------------------------------------------------
  // Made on first read, like the globals above; an app whose source names one gets them in its
  // snapshot.
  let webGlobals = null;
  const webGlobalsApi = () => (webGlobals ??= makeWebGlobals());
  lazyGlobal(["Navigator", "Performance", "PerformanceEntry", "PerformanceMark", "PerformanceMeasure", "PerformanceObserver",
    "PerformanceObserverEntryList", "PerformanceResourceTiming", "reportError"], webGlobalsApi);
  lazyGlobal(["navigator", "performance", "scheduler"], webGlobalsApi, { on: OWN });
  lazyGlobal(["origin"], webGlobalsApi, { on: OWN, readOnly: true });
  function makeWebGlobals() {
    const scheduler = Object.freeze({
      wait(ms, options = {}) {
        const signal = options?.signal;
        return new Promise((resolve, reject) => {
          if (signal?.aborted) return reject(signal.reason);
          // The runtime's timers, not the globals an app may have replaced.
          const id = startTimer(resolve, ms, [], false);
          signal?.addEventListener("abort", () => { clearTimer(id); reject(signal.reason); }, { once: true });
        });
      },
    });
    const [performance, performanceClasses] = makePerformance();
    // As on workerd: its members are the instance's own read-only data properties, in workerd's
    // order, and `userAgent` is workerd's, which libraries test to take their Workers path
    // (Hono's getRuntimeKey, unenv).
    class Navigator {
      constructor(key) {
        if (key !== kState) throw new TypeError("Illegal constructor");
        const members = [["languages", ["en"]], ["language", "en"], ["platform", ""], ["hardwareConcurrency", 1],
          ["userAgent", "Cloudflare-Workers"]];
        for (const [name, value] of members) {
          Object.defineProperty(this, name, { value, writable: false, enumerable: true, configurable: true });
        }
      }
      // POSTs `data` to `url` and answers true at once; the request keeps running until the
      // beacon has gone, as with waitUntil (a URL fetch() refuses is dropped, as on workerd).
      sendBeacon(...args) {
        const [url, data] = args;
        const sent = (async () => fetch(url, { method: "POST", body: data ?? null }))().then(() => {}, () => {});
        waitUntilCurrent(sent);
        return true;
      }
    }
    tagClasses(Navigator);
    // Reports an error as an uncaught one (to the app's log), as workerd does.
    function reportError(error) {
      if (arguments.length === 0) {
        throw new TypeError("Failed to execute 'reportError' on 'ServiceWorkerGlobalScope': parameter 1 is not of type 'Value'.");
      }
      logError("Uncaught", error);
    }
    return { scheduler, performance, navigator: new Navigator(kState), Navigator, ...performanceClasses, reportError,
      origin: "null" };
  }

  // performance as on workerd: a Performance (an EventTarget) with User Timing (marks and
  // measures, kept per context, none delivered to observers), Node's additions (timerify,
  // eventLoopUtilization and nodeTiming of an event loop the app does not see: zeros) and the
  // entry and observer classes. Its clock is workerd's: now() in ms since the epoch, timeOrigin 0.
  function makePerformance() {
    const entries = [];
    const objectDetail = (options) => {
      const detail = options?.detail ?? null;
      if (detail !== null && typeof detail !== "object" && typeof detail !== "function") {
        throw new TypeError("Incorrect type for the 'detail' field on 'Options': the provided value is not of type 'Object'.");
      }
      return detail;
    };
    class PerformanceEntry {
      #name; #type; #start; #duration;
      constructor(key, name, type, start, duration) {
        if (key !== kState) throw new TypeError("Illegal constructor");
        this.#name = name; this.#type = type; this.#start = start; this.#duration = duration;
      }
      get name() { return this.#name; }
      get entryType() { return this.#type; }
      get startTime() { return this.#start; }
      get duration() { return this.#duration; }
      toJSON() { return { name: this.#name, entryType: this.#type, startTime: this.#start, duration: this.#duration }; }
    }
    class PerformanceMark extends PerformanceEntry {
      #detail;
      constructor(name, options = undefined) {
        if (name === undefined) throw new TypeError("Failed to construct 'PerformanceMark': constructor parameter 1 is not of type 'string'.");
        const detail = objectDetail(options);
        super(kState, String(name), "mark", options?.startTime === undefined ? ops.now(true) : Number(options.startTime), 0);
        this.#detail = detail;
      }
      get detail() { return this.#detail; }
      toJSON() { return { ...super.toJSON(), detail: this.#detail }; }
    }
    class PerformanceMeasure extends PerformanceEntry {
      #detail;
      constructor(key, name, start, duration, detail) {
        super(key, name, "measure", start, duration);
        this.#detail = detail;
      }
      get detail() { return this.#detail; }
      toJSON() { return { ...super.toJSON(), detail: this.#detail }; }
    }
    class PerformanceResourceTiming extends PerformanceEntry {}
    const byName = (list, name, type) => list.filter((e) => e.name === String(name) && (type === undefined || e.entryType === type));
    const byType = (list, type) => list.filter((e) => e.entryType === String(type));
    class PerformanceObserverEntryList {
      #list;
      constructor(key, list) {
        if (key !== kState) throw new TypeError("Illegal constructor");
        this.#list = list;
      }
      getEntries() { return [...this.#list]; }
      getEntriesByName(name, type = undefined) { return byName(this.#list, name, type); }
      getEntriesByType(type) { return byType(this.#list, type); }
    }
    class PerformanceObserver {
      constructor(callback) {
        if (callback === undefined) throw new TypeError("Failed to construct 'PerformanceObserver': constructor parameter 1 is not of type 'Value'.");
      }
      static get supportedEntryTypes() { return ["measure", "mark"]; }
      observe() {}
      disconnect() {}
      takeRecords() { return []; }
    }
    // The time a mark name or a number stands for (the latest mark of that name; 0 for none).
    const timeOf = (at) => {
      if (typeof at === "number") return at;
      for (let i = entries.length - 1; i >= 0; i--) {
        if (entries[i].entryType === "mark" && entries[i].name === String(at)) return entries[i].startTime;
      }
      return 0;
    };
    const EMPTY = new Map();
    class EventCounts {
      get size() { return 0; }
      get(key) { return EMPTY.get(key); }
      has(key) { return EMPTY.has(key); }
      keys() { return EMPTY.keys(); }
      values() { return EMPTY.values(); }
      entries() { return EMPTY.entries(); }
      forEach() {}
      [Symbol.iterator]() { return EMPTY[Symbol.iterator](); }
    }
    // Node's milestones, of a process the app does not see: zeros (an entry, as in Node).
    class PerformanceNodeTiming extends PerformanceEntry {
      constructor() {
        super(kState, "node", "node", 0, 0);
        const milestones = { uvMetricsInfo: Object.freeze({ loopCount: 0, events: 0, eventsWaiting: 0 }), idleTime: 0, loopExit: 0,
          loopStart: 0, environment: 0, bootstrapComplete: 0, v8Start: 0, nodeStart: 0 };
        for (const [name, value] of Object.entries(milestones)) {
          Object.defineProperty(this, name, { value, enumerable: true, configurable: true, writable: false });
        }
      }
      toJSON() {
        const { name, entryType, startTime, duration } = this;
        return { name, entryType, startTime, duration, nodeStart: 0, v8Start: 0, bootstrapComplete: 0, environment: 0,
          loopStart: 0, loopExit: 0, idleTime: 0, uvMetricsInfo: this.uvMetricsInfo };
      }
    }
    const nodeTiming = new PerformanceNodeTiming();
    const eventCounts = new EventCounts();
    class Performance extends eventsApi().EventTarget {
      constructor(key) {
        super();
        if (key !== kState) throw new TypeError("Illegal constructor");
      }
      get timeOrigin() { return 0; }
      now() { return ops.now(true); }
      toJSON() { return { timeOrigin: this.timeOrigin }; }
      mark(name, options = undefined) {
        if (name === undefined) throw new TypeError("Failed to execute 'mark' on 'Performance': parameter 1 is not of type 'string'.");
        const mark = new PerformanceMark(name, options);
        entries.push(mark);
        return mark;
      }
      measure(name, start = undefined, end = undefined) {
        if (name === undefined) throw new TypeError("Failed to execute 'measure' on 'Performance': parameter 1 is not of type 'string'.");
        let from, to, detail = null;
        if (start !== null && typeof start === "object") {
          detail = objectDetail(start);
          const { start: s, end: e, duration: d } = start;
          if (e !== undefined) {
            to = timeOf(e);
            from = s !== undefined ? timeOf(s) : d !== undefined ? to - Number(d) : 0;
          } else {
            from = s === undefined ? 0 : timeOf(s);
            to = d !== undefined ? from + Number(d) : ops.now(true);
          }
        } else {
          from = start === undefined ? 0 : timeOf(start);
          to = end === undefined ? ops.now(true) : timeOf(end);
        }
        const measure = new PerformanceMeasure(kState, String(name), from, to - from, detail);
        entries.push(measure);
        return measure;
      }
      getEntries() { return [...entries]; }
      getEntriesByName(name, type = undefined) { return byName(entries, name, type); }
      getEntriesByType(type) { return byType(entries, type); }
      clearMarks(name = undefined) { clear("mark", name); }
      clearMeasures(name = undefined) { clear("measure", name); }
      clearResourceTimings() {}
      setResourceTimingBufferSize() {}
      markResourceTiming() {}
      get eventCounts() { return eventCounts; }
      get nodeTiming() { return nodeTiming; }
      eventLoopUtilization() { return { idle: 0, active: 0, utilization: 0 }; }
      // Node's: the function, measured (here: called, as on workerd; nothing is recorded).
      timerify(fn) {
        if (typeof fn !== "function") throw new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`);
        const timed = { [fn.name]: function (...args) { return new.target ? Reflect.construct(fn, args, new.target) : Reflect.apply(fn, this, args); } }[fn.name];
        Object.defineProperty(timed, "length", { value: fn.length });
        return timed;
      }
    }
    const clear = (type, name) => {
      for (let i = entries.length - 1; i >= 0; i--) {
        if (entries[i].entryType === type && (name === undefined || entries[i].name === String(name))) entries.splice(i, 1);
      }
    };
    const classes = { Performance, PerformanceEntry, PerformanceMark, PerformanceMeasure, PerformanceObserver,
      PerformanceObserverEntryList, PerformanceResourceTiming };
    tagClasses(...Object.values(classes), EventCounts, PerformanceNodeTiming);
    return [new Performance(kState), classes];
  }

