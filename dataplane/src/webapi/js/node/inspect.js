// NANO Node layer, tier "inspect": util.inspect and util.format (console formats with them).
// Compiled into a context on first use by the lazyScript op (see runtime/node.js); the script's value is the function that builds the tier.
//
// Reference answers: workerd (npm `workerd`, compatibility date 2026-11-01, nodejs_compat); the
// conformance test tests/e2e/compat.rs records them.
(function inspectTier() {
  "use strict";
  // ---- util.inspect and format -----------------------------------------------------------------
  const inspectCustom = Symbol.for("nodejs.util.inspect.custom");
  const quote = (s) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n")}'`;
  const keyText = (key) => (typeof key === "symbol" ? `[${key.toString()}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? key : quote(key));
  function inspect(value, options = {}) {
    const ctx = {
      depth: options.depth === undefined ? 2 : options.depth === null ? Infinity : options.depth,
      showHidden: Boolean(options.showHidden), seen: [], currentDepth: 0, indentation: 0, breakLength: options.breakLength ?? 80,
    };
    return formatValue(ctx, value, 0, true);
  }
  inspect.custom = inspectCustom;
  inspect.defaultOptions = { depth: 2, showHidden: false, breakLength: 80 };
  function formatPrimitive(value, top) {
    switch (typeof value) {
      case "string": return top === "format" ? value : quote(value);
      case "number": return Object.is(value, -0) ? "-0" : String(value);
      case "bigint": return `${value}n`;
      case "symbol": return value.toString();
      case "undefined": return "undefined";
      default: return String(value);
    }
  }
  function formatValue(ctx, value, depth, top) {
    if (value === null || (typeof value !== "object" && typeof value !== "function")) return formatPrimitive(value);
    if (typeof value[inspectCustom] === "function" && value[inspectCustom] !== inspect) {
      const out = value[inspectCustom](ctx.depth - depth, { ...ctx }, inspect);
      if (out !== value) return typeof out === "string" ? out : formatValue(ctx, out, depth);
    }
    if (ctx.seen.includes(value)) return "[Circular *1]";
    return formatRaw(ctx, value, depth, top);
  }
  function formatRaw(ctx, value, depth, top) {
    const name = value.constructor?.name ?? "[Object: null prototype]";
    let braces = ["{", "}"], base = "", entries = [], keys = Object.keys(value);
    if (typeof value === "function") {
      const fname = value.name ? `: ${value.name}` : " (anonymous)";
      base = /^class\s/.test(Function.prototype.toString.call(value)) ? `[class ${value.name || "(anonymous)"}]` : `[Function${fname}]`;
      if (keys.length === 0) return base;
    } else if (value instanceof Error) {
      base = value.stack || `${value.name}: ${value.message}`;
      keys = keys.filter((k) => k !== "stack" && k !== "message");
      if (keys.length === 0) return base;
    } else if (value instanceof Date) {
      return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
    } else if (value instanceof RegExp) {
      return RegExp.prototype.toString.call(value);
    } else if (value instanceof Promise) {
      return "Promise { <unknown> }";
    } else if (value instanceof WeakMap || value instanceof WeakSet) {
      return `${name} { <items unknown> }`;
    }
    if (depth > ctx.depth) return Array.isArray(value) ? "[Array]" : `[${name === "Object" ? "Object" : name}]`;
    ctx.seen.push(value);
    ctx.currentDepth = depth;
    const sub = (v) => formatValue(ctx, v, depth + 1);
    if (Array.isArray(value)) {
      braces = ["[", "]"];
      if (name !== "Array") base = `${name}(${value.length})`;
      let holes = 0;
      for (let i = 0; i < value.length; i++) {
        if (!Object.prototype.hasOwnProperty.call(value, i)) { holes++; continue; }
        if (holes) { entries.push(`<${holes} empty item${holes > 1 ? "s" : ""}>`); holes = 0; }
        entries.push(sub(value[i]));
      }
      if (holes) entries.push(`<${holes} empty item${holes > 1 ? "s" : ""}>`);
      keys = keys.filter((k) => !/^\d+$/.test(k));
      if (ctx.showHidden) entries.push("[length]: " + value.length);
    } else if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
      braces = ["[", "]"];
      base = `${name}(${value.length})`;
      for (const v of Array.prototype.slice.call(value, 0, 100)) entries.push(formatPrimitive(v));
      if (value.length > 100) entries.push(`... ${value.length - 100} more items`);
      keys = keys.filter((k) => !/^\d+$/.test(k));
    } else if (value instanceof Map) {
      base = `${name}(${value.size})`;
      for (const [k, v] of value) entries.push(`${sub(k)} => ${sub(v)}`);
    } else if (value instanceof Set) {
      base = `${name}(${value.size})`;
      for (const v of value) entries.push(sub(v));
    } else if (value instanceof ArrayBuffer) {
      base = "ArrayBuffer";
      const bytes = Array.from(new Uint8Array(value, 0, Math.min(value.byteLength, 50)), (b) => (b < 16 ? "0" : "") + b.toString(16));
      entries.push(`[Uint8Contents]: <${bytes.join(" ")}${value.byteLength > 50 ? ` ... ${value.byteLength - 50} more bytes` : ""}>`, `byteLength: ${value.byteLength}`);
    } else if (typeof value !== "function" && !(value instanceof Error) && name !== "Object") {
      base = Object.getPrototypeOf(value) === null ? "[Object: null prototype]" : name;
    }
    for (const key of [...keys, ...Object.getOwnPropertySymbols(value).filter((s) => Object.prototype.propertyIsEnumerable.call(value, s))]) {
      const desc = Object.getOwnPropertyDescriptor(value, key);
      const shown = desc.get ? (desc.set ? "[Getter/Setter]" : "[Getter]") : desc.set ? "[Setter]" : sub(desc.value);
      entries.push(`${keyText(key)}: ${shown}`);
    }
    ctx.seen.pop();
    if (entries.length === 0) {
      if (braces[0] === "[") return base ? `${base} []` : "[]";
      return base ? (typeof value === "function" || value instanceof Error ? base : `${base} {}`) : "{}";
    }
    // Node's rule (reduceToSingleString, compact = 3): entries stay on one line while the object
    // holds at most three levels of nesting and the line fits in breakLength.
    const start = entries.length + ctx.indentation + braces[0].length + base.length + 10;
    let total = entries.length + start;
    const fits = total + entries.length <= ctx.breakLength && entries.every((e) => (total += e.length) <= ctx.breakLength);
    if (ctx.currentDepth - depth < 3 && fits && !entries.some((e) => e.includes("\n"))) {
      return `${base ? `${base} ` : ""}${braces[0]} ${entries.join(", ")} ${braces[1]}`;
    }
    const indent = `\n${" ".repeat(ctx.indentation)}`;
    return `${base ? `${base} ` : ""}${braces[0]}${indent}  ${entries.join(`,${indent}  `)}${indent}${braces[1]}`;
  }

  function format(first, ...args) {
    if (typeof first !== "string") return [first, ...args].map((v) => (typeof v === "string" ? v : inspect(v))).join(" ");
    let i = 0;
    let out = first.replace(/%([sdifjoOc%])/g, (match, kind) => {
      if (kind === "%") return "%";
      if (i >= args.length) return match;
      const arg = args[i++];
      switch (kind) {
        case "s":
          if (typeof arg === "bigint") return `${arg}n`;
          if (typeof arg === "object" && arg !== null) return inspect(arg, { depth: 0 });
          return String(arg);
        case "d":
          return typeof arg === "bigint" ? `${arg}n` : typeof arg === "symbol" ? "NaN" : String(Number(arg));
        case "i":
          return typeof arg === "bigint" ? `${arg}n` : typeof arg === "symbol" ? "NaN" : String(parseInt(arg));
        case "f":
          return typeof arg === "symbol" ? "NaN" : String(parseFloat(arg));
        case "j":
          try { return JSON.stringify(arg); } catch { return "[Circular]"; }
        case "o":
          return inspect(arg, { showHidden: true, depth: 4 });
        case "O":
          return inspect(arg);
        case "c":
          return "";
      }
      return match;
    });
    for (; i < args.length; i++) out += ` ${typeof args[i] === "string" ? args[i] : inspect(args[i])}`;
    return out;
  }

  return { inspect, format };
})
