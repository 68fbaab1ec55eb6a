// Language built-ins that workerd's V8 has and this V8 (13.7) does not yet: Map and WeakMap
// getOrInsert/getOrInsertComputed, Math.sumPrecise, Iterator.concat, and the library half of
// explicit resource management (DisposableStack, AsyncDisposableStack, SuppressedError, the
// iterators' dispose methods).
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- language built-ins --------------------------------------------------------------------
  // Installed as V8 installs its own: non-enumerable, writable and configurable, with the
  // spec's `length`. Float16Array comes from V8 itself (its flag: see isolate::V8_FLAGS).
  {
    const { apply } = Reflect;
    const { abs } = Math;
    const hidden = (target, name, value) =>
      Object.defineProperty(target, name, { value, writable: true, enumerable: false, configurable: true });
    const method = (target, methods) => {
      for (const name of Reflect.ownKeys(methods)) hidden(target, name, methods[name]);
    };
    // A value for an error message, without running its code (String() of an object calls its
    // toString).
    const named = (v) => (typeof v === "object" && v !== null ? "object" : typeof v === "function" ? "function" : String(v));
    const callable = (fn, what) => {
      if (typeof fn !== "function") throw new TypeError(`${what}: ${named(fn)} is not a function`);
    };

    // Map and WeakMap upsert. Their own has/get/set check the receiver (a TypeError on anything
    // but a Map or WeakMap) and the key (a WeakMap's set refuses what cannot be held weakly), and
    // a Map's set makes -0 into +0, as the spec's CanonicalizeKeyedCollectionKey does.
    for (const Collection of [Map, WeakMap]) {
      const { has, get, set } = Collection.prototype;
      method(Collection.prototype, {
        getOrInsert(key, value) {
          if (apply(has, this, [key])) return apply(get, this, [key]);
          apply(set, this, [key, value]);
          return value;
        },
        getOrInsertComputed(key, callbackfn) {
          const found = apply(has, this, [key]);
          if (Collection === WeakMap && !found) apply(set, new Collection(), [key, undefined]);
          callable(callbackfn, `${Collection.name}.prototype.getOrInsertComputed`);
          if (found) return apply(get, this, [key]);
          const value = callbackfn(key === 0 ? 0 : key);
          apply(set, this, [key, value]);
          return value;
        },
      });
    }

    // Math.sumPrecise: the exact sum of the numbers, rounded once. Shewchuk's partials (each
    // addition split into the rounded sum and its exact error) while no value is large enough
    // for a partial to overflow; then, and for the final rounding, exact integers in units of
    // 2**-1074 (every double is a whole number of those).
    // Made at the first exact sum: an ArrayBuffer in the snapshot would be one more allocation
    // in every context.
    let view = null;
    const MANTISSA = (1n << 52n) - 1n;
    const exact = (x) => {
      view ??= new DataView(new ArrayBuffer(8));
      view.setFloat64(0, x);
      const bits = view.getBigUint64(0);
      const exponent = Number((bits >> 52n) & 0x7ffn);
      const mantissa = bits & MANTISSA;
      const units = exponent === 0 ? mantissa : (mantissa | (1n << 52n)) << BigInt(exponent - 1);
      return x < 0 ? -units : units;
    };
    const rounded = (units) => {
      const negative = units < 0n;
      let n = negative ? -units : units;
      let value;
      const bits = n.toString(2).length;
      if (bits <= 53) {
        value = Number(n) * 2 ** -1074;
      } else {
        let shift = bits - 53;
        const half = 1n << BigInt(shift - 1);
        let q = n >> BigInt(shift);
        const rest = n - (q << BigInt(shift));
        if (rest > half || (rest === half && (q & 1n) === 1n)) q += 1n;
        if (q === 1n << 53n) {
          q >>= 1n;
          shift += 1;
        }
        value = Number(q) * 2 ** (shift - 1074);
      }
      return negative ? -value : value;
    };
    const LARGE = 2 ** 970;
    method(Math, {
      sumPrecise(items) {
        if (items === undefined || items === null) {
          throw new TypeError(`Math.sumPrecise: ${items} is not iterable`);
        }
        // "-0" until a value other than -0 comes; then "finite", or what the infinities make.
        let state = "-0";
        let partials = [];
        let big = null;
        for (let x of items) {
          if (typeof x !== "number") throw new TypeError("Math.sumPrecise: every value must be a number");
          if (state === "NaN") continue;
          if (x !== x) {
            state = "NaN";
          } else if (x === Infinity || x === -Infinity) {
            const sign = x > 0 ? "+Infinity" : "-Infinity";
            state = state === "-0" || state === "finite" || state === sign ? sign : "NaN";
          } else if (!(x === 0 && 1 / x < 0)) {
            if (state === "-0") state = "finite";
            if (state !== "finite") continue;
            if (big === null && abs(x) >= LARGE) {
              big = 0n;
              for (let i = 0; i < partials.length; i++) big += exact(partials[i]);
            }
            if (big !== null) {
              big += exact(x);
              continue;
            }
            let kept = 0;
            for (let i = 0; i < partials.length; i++) {
              let y = partials[i];
              if (abs(x) < abs(y)) {
                const t = x;
                x = y;
                y = t;
              }
              const hi = x + y;
              const lo = y - (hi - x);
              if (lo !== 0) partials[kept++] = lo;
              x = hi;
            }
            partials.length = kept + 1;
            partials[kept] = x;
          }
        }
        if (state === "NaN") return NaN;
        if (state === "+Infinity") return Infinity;
        if (state === "-Infinity") return -Infinity;
        if (state === "-0") return -0;
        if (big === null) {
          big = 0n;
          for (let i = 0; i < partials.length; i++) big += exact(partials[i]);
        }
        return rounded(big);
      },
    });

    // Iterator.concat: each item's iterator method is read (and checked) at the call; the
    // result is one of V8's own iterator helpers (flatMap over the items), so next/return and
    // closing the current iterator behave as the built-in helpers do.
    const { flatMap } = Iterator.prototype;
    const arrayValues = Array.prototype.values;
    const itself = (x) => x;
    method(Iterator, {
      concat(...items) {
        const sources = [];
        for (let i = 0; i < items.length; i++) {
          const item = items[i];
          if (item === null || (typeof item !== "object" && typeof item !== "function")) {
            throw new TypeError(`Iterator.concat: ${String(item)} is not an object`);
          }
          const open = item[Symbol.iterator];
          callable(open, "Iterator.concat: an item's [Symbol.iterator]");
          sources[sources.length] = { [Symbol.iterator]: () => apply(open, item, []) };
        }
        return apply(flatMap, apply(arrayValues, sources, []), [itself]);
      },
    });

    // ---- explicit resource management (the library half) -------------------------------------
    // V8 13.7 has it behind --js-explicit-resource-management, which installs its classes in
    // every new context: a fifth more work for each reset-on request, for classes few apps use.
    // Here they are a group made on first read instead. `using` declarations (syntax) are not
    // there: bundlers (esbuild, TypeScript) turn them into calls of Symbol.dispose.
    hidden(Iterator.prototype, Symbol.dispose, {
      [Symbol.dispose]() {
        const close = this.return;
        if (close !== undefined && close !== null) apply(close, this, []);
      },
    }[Symbol.dispose]);
    const asyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
    hidden(asyncIteratorPrototype, Symbol.asyncDispose, {
      async [Symbol.asyncDispose]() {
        const close = this.return;
        if (close !== undefined && close !== null) await apply(close, this, []);
      },
    }[Symbol.asyncDispose]);

    let resources = null;
    lazyGlobal(["DisposableStack", "AsyncDisposableStack", "SuppressedError"], () => (resources ??= makeResources()),
      { on: OWN, hidden: true });
    function makeResources() {
      const DISPOSAL = "An error was suppressed during disposal";
      // Called or constructed, like the other error constructors.
      function SuppressedError(error, suppressed, message) {
        const made = Reflect.construct(Error, message === undefined ? [] : [message], new.target ?? SuppressedError);
        hidden(made, "error", error);
        hidden(made, "suppressed", suppressed);
        return made;
      }
      Object.setPrototypeOf(SuppressedError, Error);
      const errorPrototype = Object.create(Error.prototype);
      hidden(errorPrototype, "constructor", SuppressedError);
      hidden(errorPrototype, "name", "SuppressedError");
      hidden(errorPrototype, "message", "");
      Object.defineProperty(SuppressedError, "prototype", { value: errorPrototype, writable: false });

      const object = (value) => {
        if (typeof value !== "object" && typeof value !== "function") {
          throw new TypeError("An object is expected with `using` declarations");
        }
      };
      // GetMethod: the value's `key` method, or undefined.
      const disposer = (value, key) => {
        const found = value[key];
        if (found === undefined || found === null) return undefined;
        callable(found, `${String(key)} of the resource`);
        return found;
      };
      // Each resource is { value, dispose }: dispose is called with value as `this`, newest
      // first; an error thrown by one is suppressed by the next one's.
      const disposeAll = (list) => {
        let failed = false;
        let error;
        for (let i = list.length - 1; i >= 0; i--) {
          try {
            apply(list[i].dispose, list[i].value, []);
          } catch (err) {
            error = failed ? new SuppressedError(err, error, DISPOSAL) : err;
            failed = true;
          }
        }
        if (failed) throw error;
      };
      const disposeAllAsync = async (list) => {
        let failed = false;
        let error;
        for (let i = list.length - 1; i >= 0; i--) {
          try {
            await (list[i].dispose === undefined ? undefined : apply(list[i].dispose, list[i].value, []));
          } catch (err) {
            error = failed ? new SuppressedError(err, error, DISPOSAL) : err;
            failed = true;
          }
        }
        if (failed) throw error;
      };
      const disposed = (kind, what) =>
        new ReferenceError(`Cannot call ${kind}.prototype.${what} on an already-disposed ${kind}`);

      // The two stacks differ in how a resource is taken (`resource`: its entry, or null for
      // none) and how the list is disposed; each class has its own private names, so a
      // method of one refuses an instance of the other.
      const stackClass = (kind, disposeName, disposeSymbol, resource, disposeList, async) => {
        const Stack = {
          [kind]: class {
            #disposed = false;
            #list = [];
            #open(what) {
              if (this.#disposed) throw disposed(kind, what);
              return this.#list;
            }
            use(value) {
              const list = this.#open("use");
              const entry = resource(value);
              if (entry !== null) list[list.length] = entry;
              return value;
            }
            [disposeName]() {
              if (async) {
                // A wrong receiver rejects (the brand check throws), as async methods do.
                try {
                  if (this.#disposed) return Promise.resolve(undefined);
                } catch (err) {
                  return Promise.reject(err);
                }
              } else if (this.#disposed) {
                return undefined;
              }
              this.#disposed = true;
              const list = this.#list;
              this.#list = [];
              return disposeList(list);
            }
            adopt(value, onDispose) {
              const list = this.#open("adopt");
              callable(onDispose, `${kind}.prototype.adopt`);
              list[list.length] = { value: undefined, dispose: () => onDispose(value) };
              return value;
            }
            defer(onDispose) {
              const list = this.#open("defer");
              callable(onDispose, `${kind}.prototype.defer`);
              list[list.length] = { value: undefined, dispose: onDispose };
            }
            move() {
              const list = this.#open("move");
              const moved = new Stack();
              moved.#list = list;
              this.#list = [];
              this.#disposed = true;
              return moved;
            }
            get disposed() {
              return this.#disposed;
            }
          },
        }[kind];
        hidden(Stack.prototype, disposeSymbol, Stack.prototype[disposeName]);
        Object.defineProperty(Stack.prototype, Symbol.toStringTag, { value: kind, configurable: true });
        return Stack;
      };
      const DisposableStack = stackClass("DisposableStack", "dispose", Symbol.dispose, (value) => {
        if (value === null || value === undefined) return null;
        object(value);
        const dispose = disposer(value, Symbol.dispose);
        if (dispose === undefined) throw new TypeError("Symbol(Symbol.dispose) is not a function");
        return { value, dispose };
      }, disposeAll, false);
      const AsyncDisposableStack = stackClass("AsyncDisposableStack", "disposeAsync", Symbol.asyncDispose, (value) => {
        // Still awaited at disposal, as the spec says.
        if (value === null || value === undefined) return { value: undefined, dispose: undefined };
        object(value);
        const dispose = disposer(value, Symbol.asyncDispose);
        if (dispose !== undefined) return { value, dispose };
        const sync = disposer(value, Symbol.dispose);
        if (sync === undefined) throw new TypeError("Symbol(Symbol.dispose) is not a function");
        // Its result is not awaited; what it throws rejects.
        return { value, dispose: async function () { apply(sync, this, []); } };
      }, disposeAllAsync, true);
      return { DisposableStack, AsyncDisposableStack, SuppressedError };
    }
  }

  // V8 13.7 still has Intl.Locale's info getters, which later V8 (workerd) removed for the
  // get*() methods.
  for (const name of ["calendars", "collations", "hourCycles", "numberingSystems", "textInfo", "timeZones", "weekInfo"]) {
    delete Intl.Locale.prototype[name];
  }
