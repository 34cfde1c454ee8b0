// hangar-code-mode: runs inside a code-mode function's replica sandbox (image blaxel/code-mode,
// which Hangar maps to its base image running this bundle with the image's node). It reads the
// OpenAPI document named by $OPENAPI_REFERENCE (a URL or a file path), dereferences it, and serves
// MCP Streamable HTTP (stateless) on $HOST:$PORT at /mcp with two tools:
//   search   an agent-written `async (spec) => …` run in a child process (empty environment, time
//            limit) against the dereferenced document; its JSON result is the tool's answer
//   execute  an agent-written fetch() script run in a sandbox this server creates through Hangar's
//            API ($BL_API_URL, $BL_API_KEY): ttl-idle 10 min, reused while it lives, recreated when
//            gone; the sandbox's egress proxy injects the AUTH_<SCHEME> credentials for the API's
//            hosts, so the script (its env, files, processes, responses) never holds them.
// The run plane bridges WebSocket clients (older SDKs) to /mcp; GET / describes the server.

import { spawn } from "node:child_process";
import { randomUUID, webcrypto } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { isAbsolute, resolve } from "node:path";
import $RefParser from "@apidevtools/json-schema-ref-parser";
import yaml from "js-yaml";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { type ProxyRule, apiHosts, credentialRules, jsonSafe } from "./openapi.js";
import { SEARCH_CHILD, executeWrapper, parseExecuteOutput } from "./scripts.js";
import { EXECUTE_SANDBOX_LABEL, executeSandboxName } from "./execute-sandbox.js";

// Node 18 (Debian bookworm's, in Hangar's base image) has no global Web Crypto; the SDK uses it
(globalThis as { crypto?: unknown }).crypto ??= webcrypto;

const env = process.env;
const log = (m: string) => process.stderr.write(`[hangar-code-mode] ${m}\n`);
const SEARCH_TIMEOUT_MS = Number(env.CODE_MODE_SEARCH_TIMEOUT_MS ?? 10_000);
const EXECUTE_TIMEOUT_S = Number(env.CODE_MODE_EXECUTE_TIMEOUT_S ?? 120);
const RESULT_MAX = 512 * 1024;

const reference = env.OPENAPI_REFERENCE ?? "";
if (!reference) {
  log("OPENAPI_REFERENCE is not set: give it the URL of an OpenAPI document, or a file path in the deployed files");
  process.exit(2);
}
const where = /^https?:\/\//i.test(reference) || isAbsolute(reference) ? reference : resolve(process.cwd(), reference);

/** The document's text, from a URL (GET, 30 s) or a file; errors say why (DNS, refused, status). */
async function read(at: string): Promise<string> {
  if (!/^https?:\/\//i.test(at)) return readFile(at, "utf8");
  let res: Response;
  try {
    res = await fetch(at, { headers: { accept: "application/json, application/yaml, text/yaml, */*" }, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`${(e as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ""}`);
  }
  if (!res.ok) throw new Error(`GET answered ${res.status}`);
  return res.text();
}

let spec: Record<string, unknown> = {};
let title = "the API";
let hosts: string[] = [];
let rules: ProxyRule[] = [];
let specJson = "{}";

/** Reads and dereferences the document ($refs resolved in place; a recursion is written as a $ref, so it stays JSON). */
async function load(): Promise<void> {
  const doc = yaml.load(await read(where));
  if (typeof doc !== "object" || doc === null) throw new Error("not a JSON or YAML object");
  // external $refs resolve against where the document came from
  spec = (await $RefParser.dereference(where, doc as Record<string, unknown>)) as Record<string, unknown>;
  title = ((spec.info ?? {}) as { title?: string }).title ?? title;
  hosts = apiHosts(spec, where);
  const found = credentialRules(spec, hosts, env);
  rules = found.rules;
  specJson = jsonSafe(spec);
  log(`serving ${title} (${hosts.join(", ") || "no server host"}); credentials for ${found.schemes.join(", ") || "no scheme"} are injected by the egress proxy`);
}

type ToolResult = { content: Array<{ type: "text"; text: string }>; isError?: boolean };
const ok = (v: unknown): ToolResult => ({ content: [{ type: "text", text: clip(typeof v === "string" ? v : (JSON.stringify(v, null, 2) ?? "null")) }] });
const fail = (m: string): ToolResult => ({ content: [{ type: "text", text: clip(m) }], isError: true });
const clip = (s: string) => (s.length > RESULT_MAX ? `${s.slice(0, RESULT_MAX)}\n… (${s.length - RESULT_MAX} more characters cut)` : s);

/** Runs `code` against the document in a child node with an empty environment, killed at the time limit. */
function search(code: string): Promise<ToolResult> {
  return new Promise((done) => {
    // as nobody when the server is root: agent code that escapes the VM context still cannot read
    // this server's environment (/proc/<pid>/environ needs the same uid) or signal it
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const child = spawn(process.execPath, ["--max-old-space-size=512", "-e", SEARCH_CHILD], { env: {}, cwd: "/", stdio: ["ignore", "ignore", "pipe", "ipc"], ...asNobody });
    let settled = false;
    let stderr = "";
    const finish = (r: ToolResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      done(r);
    };
    const timer = setTimeout(() => finish(fail(`search did not finish within ${SEARCH_TIMEOUT_MS / 1000} s (time limit): make the function return sooner`)), SEARCH_TIMEOUT_MS);
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on("message", (m: { result?: string; error?: string }) => finish(m.error !== undefined ? fail(`search failed: ${m.error}`) : ok(m.result ?? "null")));
    child.on("exit", (code, signal) => finish(fail(`search ended without an answer (${signal ?? `exit ${code}`})${stderr ? `: ${stderr}` : ""}`)));
    child.on("error", (e) => finish(fail(`search could not start: ${e.message}`)));
    child.send({ code, spec: specJson, timeoutMs: SEARCH_TIMEOUT_MS });
  });
}

// ---- execute: a sandbox per replica, through Hangar's API

const apiUrl = (env.BL_API_URL ?? "").replace(/\/$/, "");
const runUrl = (env.BL_RUN_URL ?? "").replace(/\/$/, "");
const workspace = env.BL_WORKSPACE ?? "";
const replica = env.HANGAR_REPLICA_ID ?? randomUUID();
const sandboxName = executeSandboxName(env.BL_NAME ?? "code-mode", replica);
const headers = { authorization: `Bearer ${env.BL_API_KEY ?? ""}`, "x-blaxel-workspace": workspace, "content-type": "application/json" };

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function call(url: string, method: string, body?: unknown, timeoutMs = 60_000): Promise<unknown> {
  const res = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, `${method} ${new URL(url).pathname}: ${res.status} ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

let ready: Promise<void> | null = null;

/** Creates the execute sandbox (or takes the one this replica made before) and waits until it runs. */
async function ensureSandbox(): Promise<void> {
  if (!apiUrl || !runUrl || !workspace) throw new Error("execute needs BL_API_URL, BL_RUN_URL and BL_WORKSPACE (Hangar sets them in a function's replica)");
  const body = {
    metadata: { name: sandboxName, labels: { [EXECUTE_SANDBOX_LABEL]: (env.BL_NAME ?? "").slice(0, 63) } },
    spec: {
      runtime: { image: "blaxel/base-image:latest", memory: Number(env.CODE_MODE_SANDBOX_MEMORY ?? 1024) },
      lifecycle: { expirationPolicies: [{ type: "ttl-idle", value: "10m", action: "delete" }] },
      // the credential rules: secrets are sealed by Hangar and never returned
      ...(rules.length ? { network: { proxy: { routing: rules } } } : {}),
    },
  };
  try {
    await call(`${apiUrl}/sandboxes`, "POST", body);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 409)) throw e;
  }
  const deadline = Date.now() + 120_000;
  for (;;) {
    const sb = (await call(`${apiUrl}/sandboxes/${sandboxName}`, "GET").catch((e) => {
      if (e instanceof ApiError && e.status === 404) return { status: "GONE" };
      throw e;
    })) as { status?: string };
    if (sb.status === "DEPLOYED") return;
    if (sb.status === "GONE" || sb.status === "FAILED" || sb.status === "TERMINATED" || sb.status === "DELETING") {
      // gone or going (being deleted, expired): once the name is free, make it again
      if (Date.now() > deadline) throw new Error(`the execute sandbox is ${sb.status}`);
      if (sb.status !== "GONE") await new Promise((r) => setTimeout(r, 300));
      await call(`${apiUrl}/sandboxes`, "POST", body).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the execute sandbox did not start within 120 s (${sb.status})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the script in the sandbox: written as a file, run by node, its result read from stdout. */
async function runInSandbox(code: string): Promise<ToolResult> {
  const base = `${runUrl}/${encodeURIComponent(workspace)}/sandboxes/${sandboxName}`;
  const file = `/tmp/code-mode/${randomUUID()}.js`;
  await call(`${base}/filesystem/${encodeURIComponent(file)}`, "PUT", { content: executeWrapper(code) });
  try {
    const r = (await call(`${base}/process`, "POST", { command: `node ${file}`, waitForCompletion: true, timeout: EXECUTE_TIMEOUT_S, workingDir: "/tmp" }, (EXECUTE_TIMEOUT_S + 30) * 1000)) as { stdout?: string; stderr?: string; exitCode?: number };
    const out = parseExecuteOutput(r.stdout ?? "", r.stderr ?? "", r.exitCode ?? -1, EXECUTE_TIMEOUT_S);
    return out.error !== undefined ? fail(out.error) : ok({ result: out.result, ...(out.logs.length ? { logs: out.logs } : {}) });
  } finally {
    await call(`${base}/filesystem/${encodeURIComponent(file)}`, "DELETE").catch(() => undefined);
  }
}

async function execute(code: string): Promise<ToolResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      ready ??= ensureSandbox().catch((e) => {
        ready = null;
        throw e;
      });
      await ready;
      return await runInSandbox(code);
    } catch (e) {
      // the sandbox went away or is going (ttl-idle, deleted): make a new one, once
      if (attempt === 0 && e instanceof ApiError && (e.status === 404 || e.status === 410 || e.status === 503)) {
        ready = null;
        continue;
      }
      return fail(`execute failed: ${(e as Error).message}`);
    }
  }
}

// ---- MCP

function mcpServer(): McpServer {
  const s = new McpServer({ name: `code-mode ${title}`.slice(0, 100), version: "1.0.0" });
  s.registerTool(
    "search",
    {
      description:
        `Search the OpenAPI specification of ${title}. \`code\` is a JavaScript async function that receives the whole OpenAPI document ` +
        "(every $ref resolved) and returns what you want to know as JSON, e.g. " +
        "`async (spec) => Object.entries(spec.paths).map(([p, ops]) => [p, Object.keys(ops)])`. No network or file access; time-limited.",
      inputSchema: { code: z.string().describe("async (spec) => { ... return result; }") },
    },
    async ({ code }) => search(code),
  );
  s.registerTool(
    "execute",
    {
      description:
        `Run JavaScript that calls ${title}${hosts.length ? ` (${hosts.map((h) => `https://${h}`).join(", ")})` : ""} with fetch() in a sandbox. ` +
        "`code` is an async function whose return value (JSON) is the result, e.g. " +
        "`async () => { const r = await fetch(url); return await r.json(); }`; console output is returned too. " +
        "Credentials are added to the API's requests by the platform: do not set authentication yourself.",
      inputSchema: { code: z.string().describe("async () => { ... return result; }") },
    },
    async ({ code }) => execute(code),
  );
  return s;
}

const server = createServer(async (req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/" && req.method === "GET") {
    res.setHeader("content-type", "application/json");
    return res.end(JSON.stringify({ name: "code-mode", api: title, transport: "streamable-http", endpoint: "/mcp", tools: ["search", "execute"] }));
  }
  if (path !== "/mcp") return void res.writeHead(404).end();
  // stateless Streamable HTTP: no session, no server-initiated stream
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end();
  let body = "";
  for await (const c of req) body += c;
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch {
    res.writeHead(400, { "content-type": "application/json" });
    return res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null }));
  }
  const s = mcpServer();
  const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    void t.close();
    void s.close();
  });
  await s.connect(t);
  await t.handleRequest(req, res, msg);
});
load().then(
  () => server.listen(Number(env.PORT ?? 80), env.HOST ?? "0.0.0.0"),
  (e: Error) => {
    log(`could not read the OpenAPI document at ${reference}: ${e.message}`);
    process.exit(1);
  },
);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
