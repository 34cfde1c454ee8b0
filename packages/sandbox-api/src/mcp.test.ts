// The sandbox MCP server driven by the official MCP client, and the codegen HTTP routes (fast apply
// through a stand-in Morph API, local reranking).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { raw, startSandbox, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;
let client: Client;
let morph: Server;
let morphCalls: Array<{ model: string; content: string; auth: string }> = [];

async function connect(url: string): Promise<Client> {
  const c = new Client({ name: "hangar-test", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
  return c;
}

async function call(c: Client, name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean; text: string; json: <T = Record<string, unknown>>() => T }> {
  const r = (await c.callTool({ name, arguments: args })) as { isError?: boolean; content: Array<{ type: string; text: string }> };
  const text = r.content.map((x) => x.text).join("");
  return { isError: r.isError === true, text, json: <T>() => JSON.parse(text) as T };
}

beforeAll(async () => {
  // A stand-in for Morph's OpenAPI-style apply endpoint: the merged file is the update itself.
  morph = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c));
    req.on("end", () => {
      const b = JSON.parse(body) as { model: string; messages: Array<{ content: string }> };
      const content = b.messages[0]!.content;
      morphCalls.push({ model: b.model, content, auth: String(req.headers.authorization) });
      const update = /<update>([\s\S]*)<\/update>/.exec(content)![1]!.replace(/^\/\/ Instructions: .*\n/, "");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ choices: [{ message: { content: update } }] }));
    });
  });
  await new Promise<void>((r) => morph.listen(0, "127.0.0.1", r));
  h = await startSandbox();
  client = await connect(h.url);
  await raw(h.port, "PUT", "/filesystem/tree//blaxel", {
    files: {
      "src/upload.ts": "export async function uploadPartWithRetry(part: Buffer) {\n  // retry failed upload parts three times\n  return part.length;\n}\n",
      "src/config.ts": "export function parseConfig(text: string) {\n  return JSON.parse(text);\n}\n",
      "src/server/httpServer.ts": "export function startHttpServer(port: number) {\n  return port;\n}\n",
      "README.md": "# Demo\nThis project uploads files in parts.\n",
      "long.txt": Array.from({ length: 400 }, (_, i) => `line ${i + 1}`).join("\n"),
    },
  });
});
afterAll(async () => {
  await client?.close();
  await h?.stop();
  morph?.close();
});

describe("MCP server", () => {
  it("lists every tool with a description and an input schema", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        "codegenCodebaseSearch", "codegenEditFile", "codegenFileSearch", "codegenGrepSearch", "codegenListDir", "codegenParallelApply",
        "codegenReadFileRange", "codegenReapply", "codegenRerank", "fsDeleteFileOrDirectory", "fsEditFile", "fsGetWorkingDirectory",
        "fsListDirectory", "fsReadFile", "fsWriteFile", "processExecute", "processGet", "processGetLogs", "processKill", "processStop",
        "processesList",
      ].sort(),
    );
    for (const t of tools) expect(t.inputSchema.type).toBe("object");
  });

  it("runs processes", async () => {
    const ex = await call(client, "processExecute", { command: "echo from-mcp; echo warn >&2", name: "mcp-proc" });
    expect(ex.isError).toBe(false);
    expect(ex.json()).toMatchObject({ status: "completed", exitCode: 0, stdout: "from-mcp\n", stderr: "warn\n", name: "mcp-proc" });
    expect((await call(client, "processGet", { identifier: "mcp-proc" })).json()).toMatchObject({ status: "completed", name: "mcp-proc" });
    expect((await call(client, "processGetLogs", { identifier: "mcp-proc" })).json()).toEqual({ logs: expect.stringContaining("from-mcp"), stdout: "from-mcp\n", stderr: "warn\n" });
    expect((await call(client, "processesList")).json<Array<{ name: string }>>().some((p) => p.name === "mcp-proc")).toBe(true);
    const bg = await call(client, "processExecute", { command: "sleep 30", name: "mcp-bg", waitForCompletion: false });
    expect(bg.json()).toMatchObject({ status: "running" });
    expect((await call(client, "processStop", { identifier: "mcp-bg" })).json()).toMatchObject({ message: "Process stopped successfully" });
    await call(client, "processExecute", { command: "sleep 30", name: "mcp-kill", waitForCompletion: false });
    expect((await call(client, "processKill", { identifier: "mcp-kill" })).json()).toMatchObject({ message: "Process killed successfully" });
    const missing = await call(client, "processGet", { identifier: "nope" });
    expect(missing.isError).toBe(true);
    expect(missing.text).toContain("not found");
    const invalid = await call(client, "processExecute", { cmd: "x" });
    expect(invalid.isError).toBe(true);
    expect(invalid.text).toContain("command");
  });

  it("reads, writes, edits and deletes files", async () => {
    expect((await call(client, "fsGetWorkingDirectory")).json()).toEqual({ workingDirectory: "/blaxel", home: "/root" });
    expect((await call(client, "fsWriteFile", { path: "notes/todo.md", content: "- a\n- b\n" })).json()).toEqual({ path: "/blaxel/notes/todo.md", message: "File created/updated successfully" });
    expect((await call(client, "fsReadFile", { path: "notes/todo.md" })).json()).toMatchObject({ content: "- a\n- b\n", size: 8 });
    expect((await call(client, "fsListDirectory", { path: "notes" })).json<{ files: Array<{ name: string }> }>().files.map((f) => f.name)).toEqual(["todo.md"]);
    expect((await call(client, "fsEditFile", { path: "notes/todo.md", oldText: "- b", newText: "- B" })).json()).toEqual({ path: "/blaxel/notes/todo.md", replacements: 1 });
    expect(await readFile(join(h.root, "blaxel/notes/todo.md"), "utf8")).toBe("- a\n- B\n");
    const ambiguous = await call(client, "fsEditFile", { path: "notes/todo.md", oldText: "- ", newText: "* " });
    expect(ambiguous.isError).toBe(true);
    expect(ambiguous.text).toContain("2 times");
    expect((await call(client, "fsEditFile", { path: "notes/todo.md", oldText: "- ", newText: "* ", replaceAll: true })).json()).toMatchObject({ replacements: 2 });
    expect((await call(client, "fsWriteFile", { path: "notes/dir", isDirectory: true })).json()).toMatchObject({ message: "Directory created successfully" });
    expect((await call(client, "fsDeleteFileOrDirectory", { path: "notes", recursive: false })).isError).toBe(true);
    expect((await call(client, "fsDeleteFileOrDirectory", { path: "notes", recursive: true })).json()).toMatchObject({ message: "Directory deleted successfully" });
  });

  it("searches and navigates code", async () => {
    const fs = await call(client, "codegenFileSearch", { query: "httpsrv" });
    expect(fs.json<{ matches: Array<{ path: string }> }>().matches[0]!.path).toBe("src/server/httpServer.ts");
    const grep = await call(client, "codegenGrepSearch", { query: "upload\\w+Retry", includePattern: "*.ts" });
    expect(grep.json()).toMatchObject({ total: 1, results: "src/upload.ts:1: export async function uploadPartWithRetry(part: Buffer) {" });
    expect((await call(client, "codegenGrepSearch", { query: "(" })).isError).toBe(true);
    const dir = await call(client, "codegenListDir", { relativeWorkspacePath: "." });
    expect(dir.json()).toMatchObject({ path: "/blaxel", directories: expect.arrayContaining(["src/"]), files: expect.arrayContaining([{ name: "README.md", size: 44 }]) });
    const range = await call(client, "codegenReadFileRange", { targetFile: "long.txt", startLineOneIndexed: 10, endLineOneIndexedInclusive: 12 });
    expect(range.json()).toEqual({ file: "/blaxel/long.txt", startLine: 10, endLine: 12, totalLines: 400, content: "line 10\nline 11\nline 12" });
    const tooMany = await call(client, "codegenReadFileRange", { targetFile: "long.txt", startLineOneIndexed: 1, endLineOneIndexedInclusive: 300 });
    expect(tooMany.isError).toBe(true);
    expect(tooMany.text).toContain("250");
    const cs = await call(client, "codegenCodebaseSearch", { query: "retry upload part" });
    expect(cs.json<{ results: Array<{ path: string; content: string }> }>().results[0]).toMatchObject({ path: "src/upload.ts", content: expect.stringContaining("uploadPartWithRetry") });
    const scoped = await call(client, "codegenCodebaseSearch", { query: "port", targetDirectories: ["src/server/**"] });
    expect(scoped.json<{ results: Array<{ path: string }> }>().results.map((r) => r.path)).toEqual(["src/server/httpServer.ts"]);
    const rr = await call(client, "codegenRerank", { query: "parse the configuration text", filePattern: "\\.ts$" });
    expect(rr.json<{ files: Array<{ path: string; score: number; content: string }> }>().files[0]).toMatchObject({ path: "src/config.ts", score: 1, content: expect.stringContaining("parseConfig") });
  });

  it("answers not_configured for fast-apply tools without a provider key", async () => {
    for (const [name, args] of [
      ["codegenEditFile", { targetFile: "src/config.ts", codeEdit: "x" }],
      ["codegenParallelApply", { editPlan: "x", editRegions: [{ relativeWorkspacePath: "src/config.ts" }] }],
    ] as const) {
      const r = await call(client, name, args);
      expect(r.isError, name).toBe(true);
      expect(r.text, name).toContain("MORPH_API_KEY");
    }
    const re = await call(client, "codegenReapply", { targetFile: "src/config.ts" });
    expect(re.isError).toBe(true);
  });

  it("applies edits through Morph when the sandbox env has a key (MCP and HTTP)", async () => {
    const k = await startSandbox({ env: { MORPH_API_KEY: "mk-test", MORPH_API_URL: `http://127.0.0.1:${(morph.address() as AddressInfo).port}/v1` } });
    const c = await connect(k.url);
    try {
      morphCalls = [];
      await raw(k.port, "PUT", "/filesystem/src%2Fa.ts", { content: "const a = 1;\n" });
      const edit = await call(c, "codegenEditFile", { targetFile: "/src/a.ts", instructions: "I change a", codeEdit: "const a = 2;\n" });
      expect(edit.json()).toMatchObject({ success: true, path: "/src/a.ts", provider: "Morph" });
      expect(await readFile(join(k.root, "src/a.ts"), "utf8")).toBe("const a = 2;\n");
      expect(morphCalls[0]).toMatchObject({ model: "auto", auth: "Bearer mk-test", content: expect.stringContaining("<code>const a = 1;\n</code>") });
      expect((await call(c, "codegenReapply", { targetFile: "/src/a.ts" })).isError).toBe(false);
      expect(morphCalls[1]!.model).toBe("morph-v3-large");
      const par = await call(c, "codegenParallelApply", { editPlan: "// header\n", editRegions: [{ relativeWorkspacePath: "/src/b.ts" }, { relativeWorkspacePath: "/src/c.ts", startLine: 1, endLine: 2 }] });
      expect(par.json()).toMatchObject({ success: true });
      expect(await readFile(join(k.root, "src/c.ts"), "utf8")).toBe("// header\n");
      const http = await raw(k.port, "PUT", `/codegen/fastapply/${encodeURIComponent("/src/a.ts")}`, { codeEdit: "const a = 3;\n" });
      expect(http.json()).toEqual({ success: true, message: "Code edit applied successfully", path: "/src/a.ts", originalContent: "const a = 2;\n", updatedContent: "const a = 3;\n", provider: "Morph" });
    } finally {
      await c.close();
      await k.stop();
    }
  });

  it("serves codegen HTTP routes: 503 fast apply without a key, local reranking", async () => {
    const fa = await raw(h.port, "PUT", `/codegen/fastapply/${encodeURIComponent("/blaxel/src/config.ts")}`, { codeEdit: "x" });
    expect(fa.status).toBe(503);
    expect(fa.json<{ error: string; type: string }>()).toMatchObject({ type: "urn:hangar:problem:not_configured", error: expect.stringContaining("RELACE_API_KEY") });
    const rr = await raw(h.port, "GET", `/codegen/reranking/${encodeURIComponent("/blaxel")}?query=${encodeURIComponent("upload parts retry")}&scoreThreshold=0.1&tokenLimit=1000`);
    const body = rr.json<{ success: boolean; files: Array<{ path: string; score: number }> }>();
    expect(body.success).toBe(true);
    expect(body.files[0]).toMatchObject({ path: "src/upload.ts", score: 1 });
    expect((await raw(h.port, "GET", "/codegen/reranking/%2Fblaxel")).status).toBe(400);
  });

  it("refuses GET /mcp (stateless, JSON only)", async () => {
    expect((await raw(h.port, "GET", "/mcp")).status).toBe(405);
  });
});
