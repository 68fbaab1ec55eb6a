// The Node compatibility layer (js/node/), compiled on first use.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- Node compatibility (js/node/) -------------------------------------------------------------
  // `import ... from "node:x"` compiles to a module that reads the namespace through
  // __nano_builtin while the app's modules evaluate (isolate/modules.rs); register() removes it.
  // The layer is three scripts (webapi/js/node/), each compiled into a context only when the
  // context first needs it (the lazyScript op): a reset-on request deserialises its whole context,
  // so code an app does not use must not be in it. inspect (console formats with it), buffer,
  // and the rest (process and the node: modules), which builds on the other two.
  const tiers = {};
  let requestEnv = {};
  const tier = (name, ...args) => (tiers[name] ??= ops.lazyScript(name)(...args));
  const inspection = () => tier("inspect");
  const bufferTier = () => tier("buffer", ops);
  const restTier = () => {
    if (tiers.rest === undefined) Object.assign(tier("rest", ops, bufferTier(), inspection(), { feedCodec }).process.env, requestEnv);
    return tiers.rest;
  };
  const node = {
    module: (name) => (name === "buffer" ? bufferTier().bufferModule : restTier().modules[name]),
    format: (...args) => inspection().format(...args),
    inspect: (value, options) => inspection().inspect(value, options),
  };
  lazyGlobal(["Buffer"], bufferTier, { on: OWN });
  lazyGlobal(["process"], restTier, { on: OWN });
  defineOwn("global", globalThis);
  defineOwn("self", globalThis);
  defineOwn("__nano_builtin", (name) => node.module(name), false);

