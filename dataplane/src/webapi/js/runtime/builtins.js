// V8 builtins that cannot be interrupted (Array methods past 2^25 elements, JSON.parse), guarded.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- builtins that cannot be interrupted ------------------------------------------------------
  // V8's Array builtins loop over `length` in C++ without checking for termination: on a holey
  // array or an array-like of length 2**31 (`Array.prototype.indexOf.call({length: 2**40}, 1)`,
  // `Array.from({length: 2**31})`) neither limit can end them, the worker is pinned for hours, and
  // some grow V8 tables until the process aborts. Past GUARD_LENGTH elements (more than a real
  // array's elements fit in the largest memory limit) each runs in JS instead (js/guards.js,
  // compiled on first use), where the limits reach every iteration; below it, natively.
  {
    const GUARD_LENGTH = 2 ** 25;
    let slow;
    const guards = () => (slow ??= ops.lazyScript("guards")());
    // Captured, not looked up: with context reset these run without type feedback every request.
    const { apply } = Reflect;
    const { floor } = Math;
    const toObject = Object;
    // ToLength: NaN and negatives are 0, at most 2**53 - 1 (`+` throws on a BigInt or Symbol,
    // as the builtins do).
    const lengthOf = (o) => {
      const n = +o.length;
      return n > 0 ? (n < 2 ** 53 - 1 ? floor(n) : 2 ** 53 - 1) : 0;
    };
    const proto = Array.prototype;
    const nativeSort = proto.sort;
    // The builtins, by their own names: inside each wrapper below, `indexOf` is the native one.
    const {
      indexOf, lastIndexOf, includes, forEach, some, every, find, findIndex, findLast, findLastIndex,
      reduce, reduceRight, map, filter, join, toLocaleString, reverse, copyWithin, fill, slice, splice,
      unshift, shift, sort, toSorted, toReversed, toSpliced, with: with_, flat, flatMap, concat,
    } = proto;
    const guarded = (self, name, native, args) => {
      const o = toObject(self);
      const len = lengthOf(o);
      if (len <= GUARD_LENGTH) return apply(native, self, args);
      return guards()[name](o, len, [...args], nativeSort);
    };
    // Spreadable arguments count too: `[].concat({ length: 2**31, [Symbol.isConcatSpreadable]: true })`.
    const spreadLength = (v) => {
      if (v === null || typeof v !== "object") return 0;
      const s = v[Symbol.isConcatSpreadable];
      return (s !== undefined ? s : Array.isArray(v)) ? lengthOf(v) : 0;
    };
    // Written out one by one, not made in a loop: each context deserialises these (with context
    // reset, every request), and functions whose name and `length` come from their source share
    // everything but their closure. Their parameters make each builtin's `length`.
    const methods = {
      indexOf(a) { return guarded(this, "indexOf", indexOf, arguments); },
      lastIndexOf(a) { return guarded(this, "lastIndexOf", lastIndexOf, arguments); },
      includes(a) { return guarded(this, "includes", includes, arguments); },
      forEach(a) { return guarded(this, "forEach", forEach, arguments); },
      some(a) { return guarded(this, "some", some, arguments); },
      every(a) { return guarded(this, "every", every, arguments); },
      find(a) { return guarded(this, "find", find, arguments); },
      findIndex(a) { return guarded(this, "findIndex", findIndex, arguments); },
      findLast(a) { return guarded(this, "findLast", findLast, arguments); },
      findLastIndex(a) { return guarded(this, "findLastIndex", findLastIndex, arguments); },
      reduce(a) { return guarded(this, "reduce", reduce, arguments); },
      reduceRight(a) { return guarded(this, "reduceRight", reduceRight, arguments); },
      map(a) { return guarded(this, "map", map, arguments); },
      filter(a) { return guarded(this, "filter", filter, arguments); },
      join(a) { return guarded(this, "join", join, arguments); },
      toLocaleString() { return guarded(this, "toLocaleString", toLocaleString, arguments); },
      reverse() { return guarded(this, "reverse", reverse, arguments); },
      copyWithin(a, b) { return guarded(this, "copyWithin", copyWithin, arguments); },
      fill(a) { return guarded(this, "fill", fill, arguments); },
      slice(a, b) { return guarded(this, "slice", slice, arguments); },
      splice(a, b) { return guarded(this, "splice", splice, arguments); },
      unshift(a) { return guarded(this, "unshift", unshift, arguments); },
      shift() { return guarded(this, "shift", shift, arguments); },
      sort(a) { return guarded(this, "sort", sort, arguments); },
      toSorted(a) { return guarded(this, "toSorted", toSorted, arguments); },
      toReversed() { return guarded(this, "toReversed", toReversed, arguments); },
      toSpliced(a, b) { return guarded(this, "toSpliced", toSpliced, arguments); },
      with(a, b) { return guarded(this, "with", with_, arguments); },
      flat() { return guarded(this, "flat", flat, arguments); },
      flatMap(a) { return guarded(this, "flatMap", flatMap, arguments); },
      concat(a) {
        let total = spreadLength(toObject(this));
        for (let i = 0; i < arguments.length; i++) total += spreadLength(arguments[i]);
        if (total <= GUARD_LENGTH) return apply(concat, this, arguments);
        return guards().concat(toObject(this), 0, [...arguments]);
      },
    };
    for (const name in methods) {
      Object.defineProperty(proto, name, { value: methods[name], writable: true, configurable: true, enumerable: false });
    }
    // Array.from on an array-like without an iterator.
    const nativeFrom = Array.from;
    Object.defineProperty(Array, "from", {
      value: {
        from(items, ...rest) {
          if (items !== null && items !== undefined && items[Symbol.iterator] === undefined) {
            const o = Object(items);
            const len = lengthOf(o);
            if (len > GUARD_LENGTH) return guards().from(o, len, rest, this);
          }
          return Reflect.apply(nativeFrom, this, [items, ...rest]);
        },
      }.from,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }

  // JSON.parse neither checks for termination nor keeps memory in check while it runs (on a
  // 100 MB text it runs for minutes, far past any limit). A text longer than a quarter of the
  // isolate's memory limit cannot produce a value that fits anyway: refuse it up front.
  {
    const nativeParse = JSON.parse;
    Object.defineProperty(JSON, "parse", {
      value: function parse(text, reviver) {
        const source = typeof text === "string" ? text : String(text);
        const limit = ops.memoryLimit() / 4;
        if (source.length > limit) {
          throw new RangeError(
            `JSON.parse: the text is ${source.length} characters, more than a quarter of the isolate's memory limit (limits.memory_mb) allows (${limit})`,
          );
        }
        return reviver === undefined ? nativeParse(source) : nativeParse(source, reviver);
      },
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }

