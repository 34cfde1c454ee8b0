// The programs that run agent-written code: the search child (a node process of the replica with an
// empty environment) and the wrapper of an execute script (a file run by node in the sandbox).

/**
 * The search child: receives {code, spec, timeoutMs} over IPC, evaluates `code` in a fresh VM
 * context holding only the parsed document (no require, process or network), calls it and sends
 * back {result} (JSON text) or {error}. The parent kills it at the time limit (async loops too).
 */
export const SEARCH_CHILD = `
const vm = require("vm");
process.on("message", async ({ code, spec, timeoutMs }) => {
  const reply = (m) => process.send(m, () => process.exit(0));
  try {
    const logs = [];
    const log = (...a) => logs.push(a.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(" "));
    const ctx = vm.createContext({ console: { log, info: log, warn: log, error: log, debug: log } });
    ctx.spec = vm.runInContext("JSON.parse", ctx)(spec);
    const fn = vm.runInContext("(" + code + "\\n)", ctx, { timeout: timeoutMs });
    const value = typeof fn === "function" ? await vm.runInContext("(f, s) => f(s)", ctx, { timeout: timeoutMs })(fn, ctx.spec) : await fn;
    const json = JSON.stringify(value === undefined ? null : value, null, 2);
    reply({ result: logs.length ? JSON.stringify({ result: value === undefined ? null : value, logs }, null, 2) : json });
  } catch (e) {
    reply({ error: e && e.stack ? String(e.stack).split("\\n").slice(0, 6).join("\\n") : String(e) });
  }
});
`;

/** Marks the wrapper's result line on stdout. */
export const RESULT_MARK = "@@hangar-code-mode-result@@";

/**
 * An execute script as a node program: console output collected, `code` evaluated (a function is
 * called and awaited; statements are run as an async function body), then one result line.
 */
export function executeWrapper(code: string): string {
  return `"use strict";
globalThis.require = require;
const __logs = [];
const __fmt = (x) => { if (typeof x === "string") return x; try { return JSON.stringify(x); } catch { return String(x); } };
for (const k of ["log", "info", "warn", "error", "debug"]) console[k] = (...a) => __logs.push(a.map(__fmt).join(" "));
const __out = (o) => process.stdout.write(${JSON.stringify(RESULT_MARK)} + JSON.stringify(o) + "\\n");
const __code = ${JSON.stringify(code)};
(async () => {
  let v;
  try {
    v = (0, eval)("(" + __code + "\\n)");
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    v = new (Object.getPrototypeOf(async function () {}).constructor)(__code);
  }
  return typeof v === "function" ? await v() : await v;
})().then(
  (r) => __out({ result: r === undefined ? null : r, logs: __logs }),
  (e) => { __out({ error: e && e.stack ? String(e.stack) : String(e), logs: __logs }); process.exitCode = 1; },
);
`;
}

/** What an execute run gave: its result and console output, or an error. */
export function parseExecuteOutput(stdout: string, stderr: string, exitCode: number, timeoutS: number): { result?: unknown; error?: string; logs: string[] } {
  const at = stdout.lastIndexOf(RESULT_MARK);
  if (at < 0) {
    const tail = (stderr || stdout).trim().slice(-2000);
    if (exitCode === 137 || exitCode === 124 || exitCode === -1) return { error: `the script did not finish within ${timeoutS} s (or was killed)${tail ? `: ${tail}` : ""}`, logs: [] };
    return { error: `the script ended without a result (exit ${exitCode})${tail ? `: ${tail}` : ""}`, logs: [] };
  }
  let parsed: { result?: unknown; error?: string; logs?: string[] };
  try {
    parsed = JSON.parse(stdout.slice(at + RESULT_MARK.length).split("\n")[0]!);
  } catch {
    return { error: "the script's result could not be read (not JSON)", logs: [] };
  }
  const logs = parsed.logs ?? [];
  if (parsed.error !== undefined) return { error: `the script threw: ${parsed.error}${logs.length ? `\nconsole:\n${logs.join("\n")}` : ""}`, logs };
  return { result: parsed.result, logs };
}
