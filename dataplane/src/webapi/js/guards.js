// NANO runtime glue: Array methods for array-likes too long for V8's native code.
//
// V8's Array builtins loop over `length` in C++ without checking for termination, so on a holey
// array or an array-like object of length 2**31 or 2**40 (`Array.prototype.indexOf.call({length:
// 2**40}, 1)`) neither the CPU nor the memory limit can end them: the worker is pinned for hours,
// and some (`Array.from`, `sort`) grow V8 tables until the process aborts. runtime/builtins.js calls the
// native builtin below GUARD_LENGTH elements and these versions above it: the same algorithms as
// the specification, in JS, where the limits reach every iteration. Compiled with the lazyScript
// op the first time a context needs it. Not consulted here: `Symbol.species` (results are plain
// arrays).
(function guards() {
  "use strict";
  const MAX_LENGTH = 2 ** 53 - 1;
  const toInt = (v) => {
    const n = Math.trunc(Number(v));
    return Number.isNaN(n) ? 0 : n;
  };
  // A relative index clamped to [0, len] (start/end arguments).
  const clamp = (v, len, fallback) => {
    if (v === undefined) return fallback;
    const n = toInt(v);
    return n < 0 ? Math.max(len + n, 0) : Math.min(n, len);
  };
  const callable = (fn, name) => {
    if (typeof fn !== "function") throw new TypeError(`Array.prototype.${name}: ${String(fn)} is not a function`);
    return fn;
  };
  const sameValueZero = (a, b) => a === b || (a !== a && b !== b);
  // Moves element `from` to `to`, or deletes `to` when `from` is a hole.
  const move = (o, from, to) => {
    if (from in o) o[to] = o[from];
    else if (!delete o[to]) throw new TypeError(`Cannot delete property '${to}' of ${Object.prototype.toString.call(o)}`);
  };
  const remove = (o, k) => {
    if (!delete o[k]) throw new TypeError(`Cannot delete property '${k}' of ${Object.prototype.toString.call(o)}`);
  };
  const setLength = (o, len) => {
    if (!Reflect.set(o, "length", len)) throw new TypeError("Cannot assign to read only property 'length'");
  };
  const isSpreadable = (v) => {
    if (v === null || typeof v !== "object") return false;
    const s = v[Symbol.isConcatSpreadable];
    return s !== undefined ? Boolean(s) : Array.isArray(v);
  };
  const lengthOf = (o) => Math.min(Math.max(toInt(o.length), 0), MAX_LENGTH);
  // splice/toSpliced(start, deleteCount, ...items): [start, how many go, the items].
  const spliceArgs = (args, len) => {
    const start = clamp(args[0], len, 0);
    let count = 0;
    if (args.length === 1) count = len - start;
    else if (args.length > 1) count = Math.min(Math.max(toInt(args[1]), 0), len - start);
    return [start, count, args.slice(2)];
  };

  function flatten(target, source, len, depth, mapper, thisArg) {
    for (let k = 0; k < len; k++) {
      if (!(k in source)) continue;
      let element = source[k];
      if (mapper !== undefined) element = mapper.call(thisArg, element, k, source);
      if (depth > 0 && Array.isArray(element)) {
        flatten(target, element, lengthOf(element), depth - 1, undefined, undefined);
      } else {
        if (target.length >= MAX_LENGTH) throw new TypeError("Array.prototype.flat: the result is too long");
        target.push(element);
      }
    }
    return target;
  }

  // Each takes (o, len, args): the receiver as an object, its length, the call's arguments.
  return {
    indexOf(o, len, [search, from]) {
      for (let k = clamp(from, len, 0); k < len; k++) if (k in o && o[k] === search) return k;
      return -1;
    },
    lastIndexOf(o, len, args) {
      let k = len - 1;
      if (args.length > 1) {
        const n = toInt(args[1]);
        k = n < 0 ? len + n : Math.min(n, len - 1);
      }
      for (; k >= 0; k--) if (k in o && o[k] === args[0]) return k;
      return -1;
    },
    includes(o, len, [search, from]) {
      for (let k = clamp(from, len, 0); k < len; k++) if (sameValueZero(o[k], search)) return true;
      return false;
    },
    forEach(o, len, [fn, thisArg]) {
      callable(fn, "forEach");
      for (let k = 0; k < len; k++) if (k in o) fn.call(thisArg, o[k], k, o);
    },
    some(o, len, [fn, thisArg]) {
      callable(fn, "some");
      for (let k = 0; k < len; k++) if (k in o && fn.call(thisArg, o[k], k, o)) return true;
      return false;
    },
    every(o, len, [fn, thisArg]) {
      callable(fn, "every");
      for (let k = 0; k < len; k++) if (k in o && !fn.call(thisArg, o[k], k, o)) return false;
      return true;
    },
    find(o, len, [fn, thisArg]) {
      callable(fn, "find");
      for (let k = 0; k < len; k++) {
        const v = o[k];
        if (fn.call(thisArg, v, k, o)) return v;
      }
      return undefined;
    },
    findIndex(o, len, [fn, thisArg]) {
      callable(fn, "findIndex");
      for (let k = 0; k < len; k++) if (fn.call(thisArg, o[k], k, o)) return k;
      return -1;
    },
    findLast(o, len, [fn, thisArg]) {
      callable(fn, "findLast");
      for (let k = len - 1; k >= 0; k--) {
        const v = o[k];
        if (fn.call(thisArg, v, k, o)) return v;
      }
      return undefined;
    },
    findLastIndex(o, len, [fn, thisArg]) {
      callable(fn, "findLastIndex");
      for (let k = len - 1; k >= 0; k--) if (fn.call(thisArg, o[k], k, o)) return k;
      return -1;
    },
    reduce(o, len, args) {
      const fn = callable(args[0], "reduce");
      let k = 0;
      let acc;
      if (args.length > 1) acc = args[1];
      else {
        while (k < len && !(k in o)) k++;
        if (k >= len) throw new TypeError("Reduce of empty array with no initial value");
        acc = o[k++];
      }
      for (; k < len; k++) if (k in o) acc = fn(acc, o[k], k, o);
      return acc;
    },
    reduceRight(o, len, args) {
      const fn = callable(args[0], "reduceRight");
      let k = len - 1;
      let acc;
      if (args.length > 1) acc = args[1];
      else {
        while (k >= 0 && !(k in o)) k--;
        if (k < 0) throw new TypeError("Reduce of empty array with no initial value");
        acc = o[k--];
      }
      for (; k >= 0; k--) if (k in o) acc = fn(acc, o[k], k, o);
      return acc;
    },
    map(o, len, [fn, thisArg]) {
      callable(fn, "map");
      const a = new Array(len);
      for (let k = 0; k < len; k++) if (k in o) a[k] = fn.call(thisArg, o[k], k, o);
      return a;
    },
    filter(o, len, [fn, thisArg]) {
      callable(fn, "filter");
      const a = [];
      for (let k = 0; k < len; k++) {
        if (!(k in o)) continue;
        const v = o[k];
        if (fn.call(thisArg, v, k, o)) a.push(v);
      }
      return a;
    },
    join(o, len, [separator]) {
      const sep = separator === undefined ? "," : String(separator);
      let r = "";
      for (let k = 0; k < len; k++) {
        if (k > 0) r += sep;
        const v = o[k];
        if (v !== undefined && v !== null) r += String(v);
      }
      return r;
    },
    toLocaleString(o, len) {
      let r = "";
      for (let k = 0; k < len; k++) {
        if (k > 0) r += ",";
        const v = o[k];
        if (v !== undefined && v !== null) r += String(v.toLocaleString());
      }
      return r;
    },
    reverse(o, len) {
      for (let lo = 0, hi = len - 1; lo < hi; lo++, hi--) {
        const lowThere = lo in o;
        const highThere = hi in o;
        const low = lowThere ? o[lo] : undefined;
        const high = highThere ? o[hi] : undefined;
        if (highThere) o[lo] = high;
        else if (lowThere) remove(o, lo);
        if (lowThere) o[hi] = low;
        else if (highThere) remove(o, hi);
      }
      return o;
    },
    copyWithin(o, len, [target, start, end]) {
      let to = clamp(target, len, 0);
      let from = clamp(start, len, 0);
      const final = clamp(end, len, len);
      let count = Math.min(final - from, len - to);
      let step = 1;
      if (from < to && to < from + count) {
        step = -1;
        from += count - 1;
        to += count - 1;
      }
      for (; count > 0; count--, from += step, to += step) move(o, from, to);
      return o;
    },
    fill(o, len, [value, start, end]) {
      const final = clamp(end, len, len);
      for (let k = clamp(start, len, 0); k < final; k++) o[k] = value;
      return o;
    },
    slice(o, len, [start, end]) {
      let k = clamp(start, len, 0);
      const final = clamp(end, len, len);
      const a = new Array(Math.max(final - k, 0));
      for (let n = 0; k < final; k++, n++) if (k in o) a[n] = o[k];
      return a;
    },
    splice(o, len, args) {
      const [start, deleteCount, items] = spliceArgs(args, len);
      if (len + items.length - deleteCount > MAX_LENGTH) throw new TypeError("Array.prototype.splice: the result is too long");
      const removed = new Array(deleteCount);
      for (let k = 0; k < deleteCount; k++) if (start + k in o) removed[k] = o[start + k];
      const added = items.length;
      if (added < deleteCount) {
        for (let k = start; k < len - deleteCount; k++) move(o, k + deleteCount, k + added);
        for (let k = len; k > len - deleteCount + added; k--) remove(o, k - 1);
      } else if (added > deleteCount) {
        for (let k = len - deleteCount; k > start; k--) move(o, k + deleteCount - 1, k + added - 1);
      }
      for (let i = 0; i < added; i++) o[start + i] = items[i];
      setLength(o, len - deleteCount + added);
      return removed;
    },
    unshift(o, len, items) {
      const n = items.length;
      if (n > 0) {
        if (len + n > MAX_LENGTH) throw new TypeError("Array.prototype.unshift: the result is too long");
        for (let k = len; k > 0; k--) move(o, k - 1, k + n - 1);
        for (let j = 0; j < n; j++) o[j] = items[j];
      }
      setLength(o, len + n);
      return len + n;
    },
    shift(o, len) {
      if (len === 0) {
        setLength(o, 0);
        return undefined;
      }
      const first = o[0];
      for (let k = 1; k < len; k++) move(o, k, k - 1);
      remove(o, len - 1);
      setLength(o, len - 1);
      return first;
    },
    // The elements that are there are sorted natively (a dense array, bounded by memory); the
    // holes after them are deleted here.
    sort(o, len, [compare], nativeSort) {
      if (compare !== undefined && typeof compare !== "function") {
        throw new TypeError("The comparison function must be either a function or undefined");
      }
      const items = [];
      for (let k = 0; k < len; k++) if (k in o) items.push(o[k]);
      Reflect.apply(nativeSort, items, [compare]);
      for (let k = 0; k < items.length; k++) o[k] = items[k];
      for (let k = items.length; k < len; k++) if (k in o) remove(o, k);
      return o;
    },
    toSorted(o, len, [compare], nativeSort) {
      if (compare !== undefined && typeof compare !== "function") {
        throw new TypeError("The comparison function must be either a function or undefined");
      }
      const a = new Array(len);
      for (let k = 0; k < len; k++) a[k] = o[k];
      return Reflect.apply(nativeSort, a, [compare]);
    },
    toReversed(o, len) {
      const a = new Array(len);
      for (let k = 0; k < len; k++) a[k] = o[len - 1 - k];
      return a;
    },
    toSpliced(o, len, args) {
      const [start, skip, items] = spliceArgs(args, len);
      const a = new Array(len + items.length - skip);
      let n = 0;
      for (let k = 0; k < start; k++) a[n++] = o[k];
      for (const item of items) a[n++] = item;
      for (let k = start + skip; k < len; k++) a[n++] = o[k];
      return a;
    },
    with(o, len, [index, value]) {
      const relative = toInt(index);
      const actual = relative >= 0 ? relative : len + relative;
      if (actual >= len || actual < 0) throw new RangeError("Invalid index : " + String(index));
      const a = new Array(len);
      for (let k = 0; k < len; k++) a[k] = k === actual ? value : o[k];
      return a;
    },
    concat(o, _len, args) {
      const a = [];
      let n = 0;
      for (const e of [o, ...args]) {
        if (!isSpreadable(e)) {
          if (n >= MAX_LENGTH) throw new TypeError("Array.prototype.concat: the result is too long");
          a[n++] = e;
          continue;
        }
        const len = lengthOf(e);
        if (n + len > MAX_LENGTH) throw new TypeError("Array.prototype.concat: the result is too long");
        for (let k = 0; k < len; k++, n++) if (k in e) a[n] = e[k];
      }
      setLength(a, n);
      return a;
    },
    flat(o, len, [depth]) {
      const d = depth === undefined ? 1 : toInt(depth);
      return flatten([], o, len, d, undefined, undefined);
    },
    flatMap(o, len, [fn, thisArg]) {
      return flatten([], o, len, 1, callable(fn, "flatMap"), thisArg);
    },
    // Array.from on an array-like (no iterator): the mapped values, one by one.
    from(items, len, [mapFn, thisArg], ctor) {
      if (mapFn !== undefined) callable(mapFn, "from");
      const a = typeof ctor === "function" && ctor !== Array ? new ctor(len) : new Array(len);
      for (let k = 0; k < len; k++) {
        const v = items[k];
        a[k] = mapFn === undefined ? v : mapFn.call(thisArg, v, k);
      }
      setLength(a, len);
      return a;
    },
  };
});
