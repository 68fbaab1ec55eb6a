// Console: util.format-style formatting, groups, counters, timers; lines cut before they leave.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- console -------------------------------------------------------------------------------
  // One line is cut at MAX_LINE characters before it leaves JS (the node also caps what a request
  // and an app may log: see op_log).
  const MAX_LINE = 16 * 1024;
  const cut = (text, max) => (text.length > max ? `${text.slice(0, max)}\u2026 [${text.length - max} more characters cut]` : text);
  // The console is made in a context the first time it reads `console` (or the runtime logs an
  // error); until then a reset-on request does not deserialise it. An app whose source names it
  // gets it in its snapshot (lazyGlobal).
  let consoleObject = null;
  const consoleApi = () => (consoleObject ??= makeConsole());
  lazyGlobal(["console"], () => ({ console: consoleApi() }), { on: OWN, hidden: true });
  // The runtime's own error lines (an exception in a timer or a listener): the app's console
  // global may have been replaced.
  const logError = (...args) => consoleApi().error(...args);
  function makeConsole() {
    // Arguments are formatted as Node's util.format does, as on workerd (`%s`/`%d`/`%o`
    // substitution, util.inspect's layout for objects). Plain strings take a fast path; anything
    // else builds the Node layer's small inspect tier (js/node/inspect.js) on first use.
    const LEVELS = { debug: 0, log: 1, info: 1, warn: 2, error: 3 };
    const formatArgs = (args) => {
      if (args.every((a) => typeof a === "string") && !(args.length > 0 && args[0].includes("%"))) return args.join(" ");
      return node.format(...args);
    };
    const console = {};
    // Groups indent what follows by two spaces a level; counters and timers are per context.
    let groupIndent = "";
    const print = (level, text) => ops.log(level, cut(groupIndent ? text.replace(/^/gm, groupIndent) : text, MAX_LINE));
    for (const [name, level] of Object.entries(LEVELS)) {
      console[name] = (...args) => print(level, formatArgs(args));
    }
    console.trace = (...args) => print(0, `Trace: ${formatArgs(args)}${new Error().stack.replace(/^Error\n/, "\n")}`);
    console.dir = (value, options) => print(1, typeof value === "string" ? `'${value}'` : node.inspect(value, options));
    console.dirxml = (...args) => console.log(...args);
    console.assert = (condition, ...args) => {
      if (condition) return;
      print(3, args.length ? `Assertion failed: ${formatArgs(args)}` : "Assertion failed");
    };
    const counts = new Map();
    console.count = (label = "default") => {
      const n = (counts.get(String(label)) ?? 0) + 1;
      counts.set(String(label), n);
      print(1, `${label}: ${n}`);
    };
    console.countReset = (label = "default") => {
      if (!counts.has(String(label))) print(2, `Count for '${label}' does not exist`);
      counts.set(String(label), 0);
    };
    const consoleTimers = new Map();
    const elapsed = (label) => `${label}: ${(ops.now() - consoleTimers.get(label)).toFixed(3)}ms`;
    console.time = (label = "default") => {
      label = String(label);
      if (consoleTimers.has(label)) return print(2, `Label '${label}' already exists for console.time()`);
      consoleTimers.set(label, ops.now());
    };
    console.timeLog = (label = "default", ...data) => {
      label = String(label);
      if (!consoleTimers.has(label)) return print(2, `No such label '${label}' for console.timeLog()`);
      print(1, [elapsed(label), ...(data.length ? [formatArgs(data)] : [])].join(" "));
    };
    console.timeEnd = (label = "default") => {
      label = String(label);
      if (!consoleTimers.has(label)) return print(2, `No such label '${label}' for console.timeEnd()`);
      print(1, elapsed(label));
      consoleTimers.delete(label);
    };
    console.group = (...label) => {
      if (label.length) console.log(...label);
      groupIndent += "  ";
    };
    console.groupCollapsed = console.group;
    console.groupEnd = () => { groupIndent = groupIndent.slice(2); };
    // A devtools' calls, which have nothing to do here (as on workerd).
    console.clear = () => {};
    console.profile = () => {};
    console.profileEnd = () => {};
    console.timeStamp = () => {};
    console.context = () => ({ ...console });
    // A table of the rows' columns, drawn as Node draws it.
    console.table = (data, columns) => {
      if (data === null || typeof data !== "object") return console.log(data);
      const rows = data instanceof Map ? [...data.entries()].map(([k, v]) => [String(k), v]) : Object.entries(data);
      const keys = columns ?? [...new Set(rows.flatMap(([, v]) => (v !== null && typeof v === "object" ? Object.keys(v) : [])))];
      const hasValues = rows.some(([, v]) => v === null || typeof v !== "object");
      const header = ["(index)", ...keys, ...(hasValues ? ["Values"] : [])];
      const cell = (v) => (v === undefined ? "" : node.inspect(v));
      const body = rows.map(([k, v]) => [k, ...keys.map((c) => (v !== null && typeof v === "object" ? cell(v[c]) : "")), ...(hasValues ? [v !== null && typeof v === "object" ? "" : cell(v)] : [])]);
      const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)) + 2);
      const line = (l, m, r) => l + widths.map((w) => "\u2500".repeat(w)).join(m) + r;
      const row = (cells) => "\u2502" + cells.map((c, i) => { const pad = widths[i] - c.length; return " ".repeat(Math.floor(pad / 2)) + c + " ".repeat(Math.ceil(pad / 2)); }).join("\u2502") + "\u2502";
      print(1, [line("\u250c", "\u252c", "\u2510"), row(header), line("\u251c", "\u253c", "\u2524"), ...body.map(row), line("\u2514", "\u2534", "\u2518")].join("\n"));
    };
    return console;
  }
