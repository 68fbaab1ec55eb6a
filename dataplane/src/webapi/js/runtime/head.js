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

  const kState = Symbol("nano.state");
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  // A global made on first read (its code compiled then: see lazyScript), then a plain value.
  // The names go to the snapshot creator, which makes those an app's source names in advance.
  const lazyGlobals = [];
  const lazyGlobal = (name, make) => {
    lazyGlobals.push(name);
    Object.defineProperty(globalThis, name, {
      get() { const value = make(); define(name, value); return value; },
      set(value) { define(name, value); },
      configurable: true,
      enumerable: false,
    });
  };

