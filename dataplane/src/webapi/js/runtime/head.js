// NANO runtime glue: the JS half of the Web APIs and the request dispatcher.
//
// Evaluated once per app inside the snapshot creator, before the app's module. The script's value
// is a function that receives the native ops object (see webapi/mod.rs) and returns the internals
// Rust calls into: register (find the app's fetch handler), dispatch (run one request) and
// fireTimer. Nothing here keeps a reference to ops on a global: tenant code cannot reach them.
//
// The function's body is this folder's files, joined in the order webapi/mod.rs lists them
// (RUNTIME_JS): each is one area of the runtime, and all share the function's scope.
(function bootstrap(ops) {
  "use strict";

  // The key of the runtime's illegal constructors (AbortSignal, CryptoKey...): only the runtime
  // holds it. Never a property key, since any app could read it back from the object.
  const kState = Symbol("nano.state");
  // The global's prototype chain, as on workerd: globalThis -> ServiceWorkerGlobalScope.prototype
  // (`scope`: the Web API classes and functions) -> WorkerGlobalScope.prototype (EventTarget) ->
  // `targetProto` (addEventListener, removeEventListener, dispatchEvent: dispatch.js) ->
  // Object.prototype. The global's own properties are the language's, and what workerd keeps
  // there (console, crypto, navigator, process, Buffer, self, the timers...). A property of a
  // prototype costs a context a descriptor in its map, where an own one costs a property cell.
  function ServiceWorkerGlobalScope() { throw new TypeError("Illegal constructor"); }
  function WorkerGlobalScope() { throw new TypeError("Illegal constructor"); }
  const scope = ServiceWorkerGlobalScope.prototype;
  const targetProto = {};
  Object.setPrototypeOf(WorkerGlobalScope.prototype, targetProto);
  Object.setPrototypeOf(scope, WorkerGlobalScope.prototype);
  Object.setPrototypeOf(globalThis, scope);
  // A Web API on `scope`, enumerable as on workerd.
  const define = (name, value) =>
    Object.defineProperty(scope, name, { value, writable: true, configurable: true, enumerable: true });
  // One of the global's own properties (enumerable, as workerd's are, unless it is the language's
  // or `console`).
  const defineOwn = (name, value, enumerable = true) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable });
  defineOwn("ServiceWorkerGlobalScope", ServiceWorkerGlobalScope);
  define("WorkerGlobalScope", WorkerGlobalScope);
  // `Object.prototype.toString` names a Web API object by its class, as on workerd (libraries
  // tell a FormData or a URLSearchParams apart that way).
  const tagClasses = (...classes) => {
    for (const C of classes) {
      Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, writable: true, configurable: true });
    }
  };
  tagClasses(ServiceWorkerGlobalScope, WorkerGlobalScope);
  // Globals made on first read, a group at a time: `lazyGlobal(names, part, where)` makes each
  // name a native data property (the lazyGlobal op) of `scope`, or with `where.on` of the global
  // itself (OWN) or of WorkerGlobalScope.prototype (WORKER_SCOPE), whose accessor V8 keeps with
  // the isolate, so a global no request reads costs a context one descriptor (or property cell).
  // `part()` makes the group once and answers an object holding its globals by name; the first
  // read of one (through makeLazyGlobal, below) makes the global that value; an assignment before
  // any read makes it the value assigned. The names go to the snapshot creator, which makes those
  // an app's source names in advance. `where.hidden`: not enumerable; `where.readOnly`: not
  // writable.
  const lazyGroups = [];
  const lazyGlobals = [];
  const holders = [scope, globalThis, WorkerGlobalScope.prototype];
  const lazyGlobal = (names, part, { on = 0, hidden = false, readOnly = false } = {}) => {
    lazyGroups.push(part);
    // What the accessor keeps (its data): group * 16 + holder * 4 + 2 if read-only + 1 if hidden.
    // The op and the setter (webapi/mod.rs) read the last two bits as the property's attributes.
    const data = (lazyGroups.length - 1) * 16 + on * 4 + (readOnly ? 2 : 0) + (hidden ? 1 : 0);
    for (const name of names) {
      lazyGlobals.push(name);
      ops.lazyGlobal(holders[on], name, data);
    }
  };
  // lazyGlobal's `on`.
  const OWN = 1, WORKER_SCOPE = 2;
  const makeLazyGlobal = (data, name) => {
    const value = lazyGroups[data >> 4]()[name];
    const holder = holders[(data >> 2) & 3];
    // Deleted first: defining over a native data property would read it (and so build it) again.
    // On a frozen holder the accessor stays, and answers the same value (each group keeps what
    // it made) at every read.
    if (Reflect.deleteProperty(holder, name)) {
      Object.defineProperty(holder, name, { value, writable: !(data & 2), configurable: true, enumerable: !(data & 1) });
    }
    return value;
  };

