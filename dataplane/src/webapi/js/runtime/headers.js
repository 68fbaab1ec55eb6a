// Headers.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- Headers -------------------------------------------------------------------------------
  // Plain loops rather than regular expressions: with context reset every request runs in a
  // fresh context, where each regular expression literal is compiled again on first use.
  const TOKEN_PUNCTUATION = "!#$%&'*+-.^_`|~";
  function isToken(s) {
    if (s.length === 0) return false;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const alnum = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
      if (!alnum && (c > 126 || !TOKEN_PUNCTUATION.includes(s[i]))) return false;
    }
    return true;
  }
  const isHttpSpace = (c) => c === 32 || c === 9 || c === 10 || c === 13;
  function normalizeName(name) {
    const n = String(name);
    if (!isToken(n)) throw new TypeError(`Headers: invalid header name "${n}"`);
    return n.toLowerCase();
  }
  function normalizeValue(value) {
    const raw = String(value);
    let start = 0, end = raw.length;
    while (start < end && isHttpSpace(raw.charCodeAt(start))) start++;
    while (end > start && isHttpSpace(raw.charCodeAt(end - 1))) end--;
    const v = start === 0 && end === raw.length ? raw : raw.slice(start, end);
    if (v.includes("\0") || v.includes("\r") || v.includes("\n")) {
      throw new TypeError(`Headers: invalid header value ${JSON.stringify(v)}`);
    }
    return v;
  }
  // The list of `headers` ([lower-case name, value] pairs), for the runtime's own use.
  let headerList;
  // The headers of an incoming request, of Response.redirect() and of a fetched response
  // cannot change, as on workerd (copy them with new Headers(...) or new Request(...)).
  let freezeHeaders;
  class Headers {
    #list = []; // [lower-case name, value] in insertion order
    #immutable = false;
    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        this.#list = init.#list.map(([k, v]) => [k, v]);
      } else if (typeof init === "object" && Symbol.iterator in init) {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
          this.append(p[0], p[1]);
        }
      } else if (typeof init === "object") {
        for (const key of Object.keys(init)) this.append(key, init[key]);
      } else {
        throw new TypeError("Headers: init must be an object, an iterable of pairs or a Headers");
      }
    }
    static {
      headerList = (headers) => headers.#list;
      freezeHeaders = (headers) => { headers.#immutable = true; return headers; };
    }
    #mutable() { if (this.#immutable) throw new TypeError("Can't modify immutable headers."); }
    append(name, value) { this.#mutable(); this.#list.push([normalizeName(name), normalizeValue(value)]); }
    delete(name) { this.#mutable(); const n = normalizeName(name); this.#list = this.#list.filter(([k]) => k !== n); }
    get(name) {
      const n = normalizeName(name);
      const values = this.#list.filter(([k]) => k === n).map(([, v]) => v);
      return values.length === 0 ? null : values.join(", ");
    }
    // workerd's: only for set-cookie, whose values cannot be joined.
    getAll(name = undefined) {
      if (normalizeName(name) !== "set-cookie") {
        throw new TypeError('getAll() can only be used with the header name "Set-Cookie".');
      }
      return this.getSetCookie();
    }
    getSetCookie() { return this.#list.filter(([k]) => k === "set-cookie").map(([, v]) => v); }
    has(name) { const n = normalizeName(name); return this.#list.some(([k]) => k === n); }
    set(name, value) {
      this.#mutable();
      const n = normalizeName(name);
      const v = normalizeValue(value);
      const i = this.#list.findIndex(([k]) => k === n);
      if (i < 0) { this.#list.push([n, v]); return; }
      this.#list[i] = [n, v];
      this.#list = this.#list.filter(([k], j) => k !== n || j === i);
    }
    // Iteration is sorted by name with values combined, except set-cookie (Fetch spec).
    *entries() {
      const names = [...new Set(this.#list.map(([k]) => k))].sort();
      for (const name of names) {
        if (name === "set-cookie") for (const v of this.getSetCookie()) yield [name, v];
        else yield [name, this.get(name)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(cb, thisArg) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
  }
  tagClasses(Headers);
  define("Headers", Headers);

