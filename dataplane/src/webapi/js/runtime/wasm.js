// WebAssembly: instantiate under the request's limits, memories bounded, .wasm imports.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- WebAssembly.instantiate -----------------------------------------------------------------
  // V8 instantiates asynchronously inside one of its own tasks, where a module's start function
  // would run outside any request's CPU budget. Compile asynchronously (V8's background threads),
  // then instantiate in a promise reaction: the start function runs in the request's microtasks,
  // under its limits. V8 adds the WebAssembly global to each context after the snapshot, so the
  // first request in a context puts an accessor in its place, which installs these wrappers on
  // first use: with context reset most requests never touch WebAssembly, and pay one property
  // definition instead of the wrappers.
  let wasmState = 0; // 0: not yet seen in this context, 1: guarded on first use, 2: guarded
  let nativeWasm;
  const guardedWasm = () => {
    if (wasmState !== 2) guardWasm(nativeWasm);
    return nativeWasm;
  };
  // One descriptor for every context's first request: installing it makes no closures.
  const wasmOnFirstUse = {
    get() {
      defineOwn("WebAssembly", guardedWasm(), false);
      return nativeWasm;
    },
    set(value) {
      guardedWasm();
      defineOwn("WebAssembly", value, false);
    },
    configurable: true,
    enumerable: false,
  };
  function guardWasmOnFirstUse() {
    wasmState = 1;
    nativeWasm = globalThis.WebAssembly;
    if (nativeWasm !== undefined) Object.defineProperty(globalThis, "WebAssembly", wasmOnFirstUse);
  }
  function guardWasm(W) {
    wasmState = 2;
    // Puts `fn` (shorthand-named, so no constructor) in place of the builtin method `holder[fn.name]`.
    const replaceMethod = (holder, fn) =>
      Object.defineProperty(holder, fn.name, { value: fn, writable: true, configurable: true, enumerable: true });
    // Puts `Wrapper` in place of the constructor `W[name]`, sharing its prototype.
    const replaceConstructor = (name, Native, Wrapper) => {
      Wrapper.prototype = Native.prototype;
      Object.defineProperty(Native.prototype, "constructor", { value: Wrapper, writable: true, configurable: true, enumerable: false });
      Object.defineProperty(W, name, { value: Wrapper, writable: true, configurable: true, enumerable: false });
    };
    // A descriptor's maximum, lowered to `limit` (emscripten declares 4 GiB): growing past it fails.
    const cappedMaximum = (given, limit) => {
      const maximum = Number(given);
      return given === undefined || !(maximum >= 0) ? given ?? limit : Math.min(maximum, limit);
    };
    // Each open memory counts against the isolate's and the node's bounds: `count` more, or none
    // and false when a bound is reached.
    const openMemories = (count) => {
      for (let i = 0; i < count; i++) {
        if (!ops.wasmMemories(1)) {
          while (i-- > 0) ops.wasmMemories(-1);
          return false;
        }
      }
      return true;
    };
    const closeMemories = (count) => {
      for (let i = 0; i < count; i++) ops.wasmMemories(-1);
    };
    // Instances and memories hand their count back when collected.
    const collected = new FinalizationRegistry(closeMemories);
    // Every module's own memories are capped at the isolate's memory limit before V8 compiles
    // it (webapi/wasm_limits.rs): growing one past it fails, also from inside the module.
    const nativeCompile = W.compile;
    const NativeModule = W.Module;
    // Modules that define memories, and how many: each instance counts them against the
    // isolate's and the node's bounds, like a WebAssembly.Memory made in JS.
    const definedMemories = new WeakMap();
    const remember = (module, count) => {
      if (count > 0) definedMemories.set(module, count);
      return module;
    };
    const compile = (bytes) => {
      try {
        const [capped, count] = ops.wasmCap(bytes);
        return nativeCompile(capped).then((module) => remember(module, count));
      } catch (err) {
        return Promise.reject(err);
      }
    };
    replaceMethod(W, { compile(bytes) { return compile(bytes); } }.compile);
    function Module(bytes) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
      const [capped, count] = ops.wasmCap(bytes);
      return remember(Reflect.construct(NativeModule, [capped], new.target), count);
    }
    const NativeInstance = W.Instance;
    function Instance(module, imports) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Instance must be invoked with 'new'");
      const count = definedMemories.get(module) ?? 0;
      if (!openMemories(count)) {
        throw new RangeError("WebAssembly.Instance: too many WebAssembly memories are open in this isolate or on this node; drop references to instances no longer used");
      }
      let instance;
      try {
        instance = Reflect.construct(NativeInstance, [module, imports], new.target);
      } catch (err) {
        closeMemories(count);
        throw err;
      }
      if (count > 0) collected.register(instance, count);
      return instance;
    }
    replaceConstructor("Instance", NativeInstance, Instance);
    for (const name of ["exports", "imports", "customSections"]) Module[name] = NativeModule[name];
    replaceConstructor("Module", NativeModule, Module);
    replaceMethod(W, {
      instantiate(source, imports) {
        if (source instanceof NativeModule) return Promise.resolve().then(() => new W.Instance(source, imports));
        return compile(source).then((module) => ({ module, instance: new W.Instance(module, imports) }));
      },
    }.instantiate);
    Object.defineProperty(W.instantiate, "length", { value: 1 });

    // WebAssembly memory lives outside the heap: no memory may be larger than the isolate's
    // memory limit (limits.memory_mb), neither made so nor grown so from JS (its maximum is
    // capped there), and their number is bounded per isolate and per node (each one reserves
    // address space; too many abort the process). Refusals are RangeErrors, at once.
    const PAGE = 65536;
    const NativeMemory = W.Memory;
    const nativeGrow = NativeMemory.prototype.grow;
    const limitPages = () => Math.floor(ops.memoryLimit() / PAGE);
    const pages = (value, what) => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) return value; // the native constructor says what is wrong
      if (n > limitPages()) {
        throw new RangeError(`WebAssembly.Memory: ${what} of ${n} pages (${n * PAGE} bytes) is more than the isolate's memory limit allows (${limitPages()} pages, limits.memory_mb)`);
      }
      return n;
    };
    function Memory(descriptor) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Memory must be invoked with 'new'");
      if (descriptor === null || typeof descriptor !== "object") return Reflect.construct(NativeMemory, [descriptor], new.target);
      const capped = { ...descriptor };
      capped.initial = pages(descriptor.initial, "an initial size");
      capped.maximum = cappedMaximum(descriptor.maximum, limitPages());
      if (!openMemories(1)) {
        throw new RangeError("WebAssembly.Memory: too many WebAssembly memories are open in this isolate or on this node; drop references to ones no longer used");
      }
      let memory;
      try {
        memory = Reflect.construct(NativeMemory, [capped], new.target);
      } catch (err) {
        closeMemories(1);
        throw err;
      }
      collected.register(memory, 1);
      return memory;
    }
    replaceConstructor("Memory", NativeMemory, Memory);
    // A table's entries take at least 8 bytes each, outside what V8 counts as heap use until it
    // has filled them: bounded the same way.
    const NativeTable = W.Table;
    const nativeTableGrow = NativeTable.prototype.grow;
    const tableLimit = () => Math.floor(ops.memoryLimit() / 8);
    const entries = (value, what) => {
      const n = Number(value);
      if (Number.isFinite(n) && n > tableLimit()) {
        throw new RangeError(`WebAssembly.Table: ${what} of ${n} entries is more than the isolate's memory limit allows (${tableLimit()} entries of 8 bytes, limits.memory_mb)`);
      }
      return value;
    };
    function Table(descriptor, ...rest) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Table must be invoked with 'new'");
      if (descriptor === null || typeof descriptor !== "object") return Reflect.construct(NativeTable, [descriptor, ...rest], new.target);
      const capped = { ...descriptor, initial: entries(descriptor.initial, "an initial size") };
      capped.maximum = cappedMaximum(descriptor.maximum, tableLimit());
      return Reflect.construct(NativeTable, [capped, ...rest], new.target);
    }
    replaceConstructor("Table", NativeTable, Table);
    replaceMethod(NativeTable.prototype, {
      grow(delta, ...rest) {
        const add = Number(delta);
        if (Number.isFinite(add) && add > 0) entries(this.length + add, "growing to a size");
        return Reflect.apply(nativeTableGrow, this, [delta, ...rest]);
      },
    }.grow);
    replaceMethod(NativeMemory.prototype, {
      grow(delta) {
        const add = Number(delta);
        if (Number.isFinite(add) && add > 0) {
          const now = this.buffer.byteLength / PAGE;
          if (now + add > limitPages()) {
            throw new RangeError(`WebAssembly.Memory.grow: ${now + add} pages (${(now + add) * PAGE} bytes) is more than the isolate's memory limit allows (${limitPages()} pages, limits.memory_mb)`);
          }
        }
        return Reflect.apply(nativeGrow, this, [delta]);
      },
    }.grow);
  }

  // ---- .wasm imports ------------------------------------------------------------------------------
  // Each `import mod from "./x.wasm"` is a small module whose default export the runtime fills,
  // in every context, with a WebAssembly.Module (see isolate/modules.rs).
  const wasmSetters = new Map();
  defineOwn("__nano_wasm_register", (name, setter) => wasmSetters.set(name, setter));
  function setWasm(name, module) {
    // The module's `constructor` must already be the guarded one.
    if (wasmState === 0) guardWasmOnFirstUse();
    void globalThis.WebAssembly;
    wasmSetters.get(name)?.(module);
  }

