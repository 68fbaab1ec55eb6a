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
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  // Globals made on first read, a group at a time: `lazyGlobal(names, part)` makes each name a
  // native data property of the global (the lazyGlobal op), whose accessor V8 keeps with the
  // isolate, so a global no request reads costs a context one property cell. `part()` makes the
  // group once and answers an object holding its globals by name; the first read of one (through
  // makeLazyGlobal, below) makes the global that value; an assignment before any read makes it
  // the value assigned. The names go to the snapshot creator, which makes those an app's source
  // names in advance.
  // `Object.prototype.toString` names a Web API object by its class, as on workerd (libraries
  // tell a FormData or a URLSearchParams apart that way).
  const tagClasses = (...classes) => {
    for (const C of classes) {
      Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, writable: true, configurable: true });
    }
  };
  const lazyGroups = [];
  const lazyGlobals = [];
  const lazyGlobal = (names, part) => {
    lazyGroups.push(part);
    for (const name of names) {
      lazyGlobals.push(name);
      ops.lazyGlobal(name, lazyGroups.length - 1);
    }
  };
  const makeLazyGlobal = (group, name) => {
    const value = lazyGroups[group]()[name];
    // Deleted first: defining over a native data property would read it (and so build it) again.
    // On a frozen global the accessor stays, and answers the same value (each group keeps what
    // it made) at every read.
    if (Reflect.deleteProperty(globalThis, name)) define(name, value);
    return value;
  };

