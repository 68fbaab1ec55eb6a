// URL and URLSearchParams.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- URL, made on first use ---------------------------------------------------------------------
  // Made in a context the first time it reads URL or URLSearchParams (or needs them itself); a
  // request's URL is a string until then, parsed by the op without a URL object.
  let urls = null;
  const urlApi = () => (urls ??= makeUrls());
  lazyGlobal(["URL", "URLSearchParams"], urlApi);
  // The parts of `url` (relative to `base`) as the `url` crate parses them (see URL below): the
  // first is the WHATWG serialisation, as `new URL(url, base).href`.
  const parseUrl = (url, base) => ops.urlParse(String(url), base === undefined ? undefined : String(base));
  function makeUrls() {
    // Binds `params` to `url` with the query `search`; sets the search of `url`.
    let bindParams, setSearch;
    class URLSearchParams {
      #list = []; #url = null;
      constructor(init = "") {
        if (typeof init === "object" && init !== null) {
          const pairs = Symbol.iterator in init ? init : Object.entries(init);
          for (const pair of pairs) {
            const [k, v] = pair;
            if (pair.length !== 2) throw new TypeError("URLSearchParams: each pair must have two items");
            this.#list.push([String(k), String(v)]);
          }
        } else {
          this.#parse(String(init));
        }
      }
      #parse(text) {
        this.#list = [];
        const query = text.startsWith("?") ? text.slice(1) : text;
        for (const part of query.split("&")) {
          if (!part) continue;
          const eq = part.indexOf("=");
          const name = eq < 0 ? part : part.slice(0, eq);
          const value = eq < 0 ? "" : part.slice(eq + 1);
          this.#list.push([decodeForm(name), decodeForm(value)]);
        }
      }
      static {
        bindParams = (params, url, search) => { params.#url = url; params.#parse(search); };
      }
      #update() { if (this.#url) setSearch(this.#url, this.toString()); }
      append(name, value) { this.#list.push([String(name), String(value)]); this.#update(); }
      // An entry of `name` (and of `value`, when given): has() and delete() take both.
      static #matches(name, value) {
        const n = String(name);
        const v = value === undefined ? undefined : String(value);
        return ([k, val]) => k === n && (v === undefined || val === v);
      }
      delete(name, value = undefined) {
        const matches = URLSearchParams.#matches(name, value);
        this.#list = this.#list.filter((entry) => !matches(entry));
        this.#update();
      }
      get(name) { const e = this.#list.find(([k]) => k === String(name)); return e ? e[1] : null; }
      getAll(name) { return this.#list.filter(([k]) => k === String(name)).map(([, v]) => v); }
      has(name, value = undefined) { return this.#list.some(URLSearchParams.#matches(name, value)); }
      set(name, value) {
        const n = String(name);
        const i = this.#list.findIndex(([k]) => k === n);
        if (i < 0) this.#list.push([n, String(value)]);
        else {
          this.#list[i][1] = String(value);
          this.#list = this.#list.filter(([k], j) => k !== n || j === i);
        }
        this.#update();
      }
      sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#update(); }
      get size() { return this.#list.length; }
      forEach(cb, thisArg) { for (const [k, v] of this.#list) cb.call(thisArg, v, k, this); }
      *entries() { for (const [k, v] of this.#list) yield [k, v]; }
      *keys() { for (const [k] of this.#list) yield k; }
      *values() { for (const [, v] of this.#list) yield v; }
      [Symbol.iterator]() { return this.entries(); }
      toString() { return this.#list.map(([k, v]) => `${encodeForm(k)}=${encodeForm(v)}`).join("&"); }
    }
    function decodeForm(s) {
      try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch { return s; }
    }
    function encodeForm(s) {
      return encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
    }

    // Parsing is WHATWG-exact because it is done by the `url` crate (ops.urlParse / ops.urlSet),
    // which return [href, protocol, username, password, host, hostname, port, pathname, search,
    // hash, origin].
    class URL {
      #parts; #params;
      constructor(url, base) {
        this.#parts = parseUrl(url, base);
        this.#params = new URLSearchParams();
        bindParams(this.#params, this, this.#parts[8]);
      }
      static canParse(url, base) {
        try { new URL(url, base); return true; } catch { return false; }
      }
      static parse(url, base) {
        try { return new URL(url, base); } catch { return null; }
      }
      // Blob URLs need a document to live in: workerd has these and refuses them the same way.
      static createObjectURL() { throw new Error("URL.createObjectURL() is not implemented"); }
      static revokeObjectURL() { throw new Error("URL.revokeObjectURL() is not implemented"); }
      static {
        setSearch = (url, search) => url.#set("search", search);
      }
      #set(part, value) {
        this.#parts = ops.urlSet(this.#parts[0], part, String(value));
        if (part !== "search") bindParams(this.#params, this, this.#parts[8]);
      }
      get href() { return this.#parts[0]; }
      set href(v) { this.#set("href", v); }
      get protocol() { return this.#parts[1]; }
      set protocol(v) { this.#set("protocol", v); }
      get username() { return this.#parts[2]; }
      set username(v) { this.#set("username", v); }
      get password() { return this.#parts[3]; }
      set password(v) { this.#set("password", v); }
      get host() { return this.#parts[4]; }
      set host(v) { this.#set("host", v); }
      get hostname() { return this.#parts[5]; }
      set hostname(v) { this.#set("hostname", v); }
      get port() { return this.#parts[6]; }
      set port(v) { this.#set("port", v); }
      get pathname() { return this.#parts[7]; }
      set pathname(v) { this.#set("pathname", v); }
      get search() { return this.#parts[8]; }
      set search(v) { this.#set("search", v); bindParams(this.#params, this, this.#parts[8]); }
      get hash() { return this.#parts[9]; }
      set hash(v) { this.#set("hash", v); }
      get origin() { return this.#parts[10]; }
      get searchParams() { return this.#params; }
      toString() { return this.#parts[0]; }
      toJSON() { return this.#parts[0]; }
    }
    tagClasses(URL, URLSearchParams);
    return { URL, URLSearchParams };
  }
