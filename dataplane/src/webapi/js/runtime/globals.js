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
  lazyGlobal(["scheduler", "performance", "navigator"], () => (webGlobals ??= makeWebGlobals()));
  function makeWebGlobals() {
    const scheduler = Object.freeze({
      wait(ms, options = {}) {
        const signal = options?.signal;
        return new Promise((resolve, reject) => {
          if (signal?.aborted) return reject(signal.reason);
          const id = setTimeout(resolve, ms);
          signal?.addEventListener("abort", () => { clearTimeout(id); reject(signal.reason); }, { once: true });
        });
      },
    });
    const performance = Object.freeze({
      now: () => ops.now(),
      get timeOrigin() { return Date.now() - ops.now(); },
      toJSON() { return { timeOrigin: this.timeOrigin }; },
    });
    const navigator = Object.freeze({ userAgent: "NANO/0.1", hardwareConcurrency: 1, language: "en", languages: ["en"], platform: "" });
    return { scheduler, performance, navigator };
  }

