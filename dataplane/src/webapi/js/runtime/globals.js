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
  lazyGlobal(["scheduler", "performance", "navigator", "Navigator"], () => (webGlobals ??= makeWebGlobals()));
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
    return { scheduler, performance, navigator: new Navigator(kState), Navigator };
  }

