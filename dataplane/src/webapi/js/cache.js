// NANO runtime glue: the Cache API (caches, Cache, CacheStorage), compiled into a context only
// when it first reads one of them (runtime/fetch.js defines them as lazy globals). The entries
// live in the node's store (crate::cache), one partition per app; these classes check their
// arguments as workerd does and hand plain values to the cachePut/cacheMatch/cacheDelete ops.
(function cacheApi(ops, helpers) {
  "use strict";
  const { bodyState, headerList, freezeHeaders, tagClasses, Request, Response, Headers, NULL_BODY_STATUS } = helpers;
  const kCreate = Symbol("create");
  // caches.default's partition: a name caches.open() cannot give (open names are strings
  // typed by the app; this one has a character no header or URL carries).
  const DEFAULT = "\u0000default";

  // workerd has these names but not their behaviour: each throws, as there.
  const notImplemented = (prototype, on, names) => {
    for (const what of names) {
      Object.defineProperty(prototype, what, {
        value() { throw new Error(`Failed to execute '${what}' on '${on}': the method is not implemented.`); },
        writable: true, configurable: true, enumerable: false,
      });
    }
  };
  // The key of an entry: a GET Request for a string or URL, the app's Request as it is.
  function keyOf(what, request) {
    if (request instanceof Request) return request;
    if (request === undefined || request === null) {
      throw new TypeError(`Failed to execute '${what}' on 'Cache': parameter 1 is not of type 'Request or string'.`);
    }
    return new Request(String(request));
  }
  const flatHeaders = (headers) => {
    const flat = [];
    for (const [name, value] of headerList(headers)) flat.push(name, value);
    return flat;
  };

  class Cache {
    #name;
    constructor(token = undefined, name = DEFAULT) {
      if (token !== kCreate) throw new TypeError("Illegal constructor");
      this.#name = name;
    }

    async put(request, response) {
      if (!(response instanceof Response)) {
        throw new TypeError("Failed to execute 'put' on 'Cache': parameter 2 is not of type 'Response'.");
      }
      const key = keyOf("put", request);
      if (key.method !== "GET") throw new TypeError("Cannot cache response to non-GET request.");
      if (response.status === 206) {
        throw new TypeError("Cannot cache response to a range request (206 Partial Content).");
      }
      const vary = response.headers.get("vary");
      if (vary !== null && vary.includes("*")) throw new TypeError("Cannot cache response with 'Vary: *' header.");
      if (response.bodyUsed) {
        throw new TypeError("Body has already been used. It can only be used once. Use tee() first if you need to read it twice.");
      }
      // As workerd: a 304 answers a conditional request, so it is never stored (silently).
      if (response.status === 304) return undefined;
      const bytes = new Uint8Array(await response.arrayBuffer());
      ops.cachePut(this.#name, key.url, response.status, flatHeaders(response.headers), bytes);
      return undefined;
    }

    async match(request, options = undefined) {
      const key = keyOf("match", request);
      if (key.method !== "GET" && !options?.ignoreMethod) return undefined;
      const headers = key.headers;
      const found = ops.cacheMatch(this.#name, key.url, headers.get("if-none-match"),
        headers.get("if-modified-since"), headers.get("range"));
      if (found === undefined) return undefined;
      const [status, flat, body] = found;
      const responseHeaders = new Headers();
      const list = headerList(responseHeaders);
      for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
      const response = new Response(NULL_BODY_STATUS.has(status) ? null : body, { status, headers: responseHeaders });
      freezeHeaders(responseHeaders);
      bodyState(response).url = key.url;
      return response;
    }

    async delete(request, options = undefined) {
      const key = keyOf("delete", request);
      if (key.method !== "GET" && !options?.ignoreMethod) return false;
      return ops.cacheDelete(this.#name, key.url);
    }
  }
  notImplemented(Cache.prototype, "Cache", ["add", "addAll", "matchAll", "keys"]);

  const defaultCache = new Cache(kCreate);
  class CacheStorage {
    constructor(token = undefined) {
      if (token !== kCreate) throw new TypeError("Illegal constructor");
    }
    get default() { return defaultCache; }
    async open(name) {
      if (name === undefined || name === null) {
        throw new TypeError("Failed to execute 'open' on 'CacheStorage': parameter 1 is not of type 'string'.");
      }
      return new Cache(kCreate, String(name));
    }
  }
  notImplemented(CacheStorage.prototype, "CacheStorage", ["has", "delete", "keys", "match"]);

  tagClasses(Cache, CacheStorage);
  return { Cache, CacheStorage, caches: new CacheStorage(kCreate) };
});
