// A user exposes an API to agents in code mode: a function created with the unmodified
// @blaxel/core and image blaxel/code-mode:latest becomes an MCP server whose `search` tool runs
// agent-written JavaScript over the dereferenced OpenAPI document and whose `execute` tool runs an
// agent-written fetch() script in a sandbox; the API keys (an apiKey header scheme and an apiKey
// query scheme) are injected by that sandbox's egress proxy and never reach the script. "The
// internet" is a stand-in in a network namespace serving the OpenAPI document and echoing requests.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeInternet } from "@hangar/egress-proxy/testing";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst, zipFiles } from "./harness.js";

const HEADER_KEY = "pk-live-7f3a9c2e1b";
const QUERY_KEY = "qk-live-55d0e4a8c1";
/** Matches the keys without containing them (a grep's own command line must not match). */
const KEY_RE = "pk-live-7f3a9c2e1[b]|qk-live-55d0e4a8c[1]";
const HOST = "api.petstore.test";

const OPENAPI = {
  openapi: "3.0.3",
  info: { title: "Pet Store", version: "1.0.0" },
  servers: [{ url: `https://${HOST}/v1` }],
  security: [{ PetKey: [], QueryKey: [] }],
  paths: {
    "/pets": {
      get: {
        operationId: "listPets",
        summary: "List pets",
        parameters: [{ $ref: "#/components/parameters/Limit" }],
        responses: { "200": { description: "pets", content: { "application/json": { schema: { type: "array", items: { $ref: "#/components/schemas/Pet" } } } } } },
      },
    },
    "/pets/{petId}": {
      get: {
        operationId: "getPet",
        summary: "Get a pet by id",
        parameters: [{ name: "petId", in: "path", required: true, schema: { type: "integer" } }],
        responses: { "200": { description: "a pet", content: { "application/json": { schema: { $ref: "#/components/schemas/Pet" } } } } },
      },
    },
  },
  components: {
    parameters: { Limit: { name: "limit", in: "query", schema: { type: "integer", maximum: 100 } } },
    schemas: {
      Pet: { type: "object", required: ["id", "name"], properties: { id: { type: "integer" }, name: { type: "string" }, owner: { $ref: "#/components/schemas/Owner" } } },
      Owner: { type: "object", properties: { email: { type: "string", format: "email" } } },
    },
    securitySchemes: {
      PetKey: { type: "apiKey", in: "header", name: "X-Api-Key" },
      QueryKey: { type: "apiKey", in: "query", name: "api_key" },
    },
  },
};

let h: RunningHangar;
let net: FakeInternet;
let dir: string;

type Tool = { name: string; call: (args: unknown) => Promise<unknown> };
type Result = { content: Array<{ type: string; text: string }>; isError?: boolean };
let tools: Tool[];
const tool = (name: string) => tools.find((t) => t.name === name)!;
const text = (r: unknown) => (r as Result).content.map((c) => c.text).join("\n");

beforeAll(async () => {
  net = await FakeInternet.start({
    name: "cme2e",
    // (sandboxes may not reach private or 198.18.0.0/15 ranges: a public one no one routes, RFC 7526's retired 6to4 relays)
    subnet: "192.88.99.0/28",
    hosts: [{ names: [HOST], files: { "/openapi.json": { contentType: "application/json", body: JSON.stringify(OPENAPI) } } }],
  });
  dir = mkdtempSync(join(tmpdir(), "hangar-e2e-codemode-"));
  writeFileSync(join(dir, "internet-ca.pem"), net.ca.certPem);
  h = await startHangar({ env: { HANGAR_SANDBOX_DNS: net.dns, HANGAR_EGRESS_CA_FILES: join(dir, "internet-ca.pem") } });
  useSdkAgainst(h);
}, 300_000);

afterAll(async () => {
  await h?.dispose();
  await net?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function deployed(name: string, deadlineMs: number): Promise<{ status: string; metadata: { url: string } }> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const fn = (await (await api(h, "GET", `/v0/functions/${name}`)).json()) as { status: string; metadata: { url: string }; events: unknown[] };
    if (fn.status === "DEPLOYED") return fn;
    if (fn.status === "FAILED" || Date.now() > deadline) throw new Error(`function ${name}: ${fn.status} ${JSON.stringify(fn.events.at(-1))}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

describe("exposing an API in code mode", () => {
  let url = "";

  it("deploys blaxel/code-mode:latest with createFunction of @blaxel/core; its tools are search and execute", { timeout: 150_000 }, async () => {
    const { createFunction, getTool } = await import("@blaxel/core");
    const res = await createFunction({
      body: {
        metadata: { name: "petstore", displayName: "Pet Store Code Mode" },
        spec: {
          runtime: {
            image: "blaxel/code-mode:latest",
            memory: 1024,
            envs: [
              { name: "OPENAPI_REFERENCE", value: `http://${HOST}/openapi.json` },
              { name: "AUTH_PETKEY", value: HEADER_KEY },
              { name: "AUTH_QUERYKEY", value: QUERY_KEY, secret: true },
              // a short time limit for agent-written searches, so the test does not wait long
              { name: "CODE_MODE_SEARCH_TIMEOUT_MS", value: "2000" },
              { name: "CODE_MODE_EXECUTE_TIMEOUT_S", value: "4" },
            ],
          },
        },
      } as never,
    });
    expect(res.error).toBeUndefined();
    url = (await deployed("petstore", 140_000)).metadata.url;
    const revs = (await (await api(h, "GET", "/v0/functions/petstore/revisions")).json()) as Array<{ image: string }>;
    expect(revs[0]!.image).toBe("blaxel/code-mode:latest");
    tools = (await getTool("petstore")) as Tool[];
    expect(tools.map((t) => t.name).sort()).toEqual(["execute", "search"]);
  });

  it("search runs an agent's function over the document with every $ref resolved", { timeout: 30_000 }, async () => {
    const r = (await tool("search").call({
      code: `async (spec) => {
        const found = Object.entries(spec.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => /pet by id/i.test(op.summary)).map(([method, op]) => ({ method, path, op })));
        const { method, path, op } = found[0];
        return { method, path, servers: spec.servers, pet: op.responses["200"].content["application/json"].schema, limit: spec.paths["/pets"].get.parameters[0] };
      }`,
    })) as Result;
    expect(r.isError).toBeFalsy();
    const got = JSON.parse(text(r)) as { method: string; path: string; servers: Array<{ url: string }>; pet: { properties: { owner: { properties: { email: { format: string } } } } }; limit: { name: string } };
    expect(got).toMatchObject({ method: "get", path: "/pets/{petId}", servers: [{ url: `https://${HOST}/v1` }], limit: { name: "limit" } });
    expect(got.pet.properties.owner.properties.email.format).toBe("email");
    expect(text(r)).not.toContain("$ref");
  });

  it("execute runs a fetch() script in a sandbox; the egress proxy adds the keys, the script never sees them", { timeout: 120_000 }, async () => {
    await net.clearRequests();
    const r = (await tool("execute").call({
      code: `async () => {
        const res = await fetch("https://${HOST}/v1/pets/7?verbose=1");
        const echo = await res.json();
        console.log("status", res.status);
        return { status: res.status, url: echo.url, key: echo.headers["x-api-key"] };
      }`,
    })) as Result;
    expect(r.isError, text(r)).toBeFalsy();
    const got = JSON.parse(text(r)) as { result: { status: number; url: string; key: string }; logs: string[] };
    expect(got.result.status).toBe(200);
    // the API echoes what it received: the proxy redacts the keys in what comes back
    expect(got.result.key).toBe("[REDACTED]");
    expect(got.result.url).toBe("/v1/pets/7?verbose=1&api_key=[REDACTED]");
    expect(got.logs).toEqual(["status 200"]);
    // the service saw both keys
    const seen = (await net.requests()).filter((q) => q.host === HOST && q.url.startsWith("/v1/pets/7")).pop();
    expect(seen?.headers["x-api-key"]).toBe(HEADER_KEY);
    expect(seen?.url).toBe(`/v1/pets/7?verbose=1&api_key=${QUERY_KEY}`);

    // the script looks for the keys everywhere it can: env, files, processes
    const spy = (await tool("execute").call({
      code: `async () => {
        const { execSync } = require("child_process");
        const sh = (c) => execSync(c, { encoding: "utf8" });
        return {
          env: JSON.stringify(process.env),
          files: sh("grep -rIlE '${KEY_RE}' /etc /blaxel /tmp /root /home /var /.hangar /usr/local 2>/dev/null | head -5; true"),
          procs: sh("cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\\\0' '\\\\n' | grep -cE '${KEY_RE}'; true"),
          ps: sh("ps auxww"),
        };
      }`,
    })) as Result;
    expect(spy.isError, text(spy)).toBeFalsy();
    const found = JSON.parse(text(spy)) as { result: { env: string; files: string; procs: string; ps: string } };
    expect(found.result.env).toContain("HTTPS_PROXY");
    expect(found.result.files.trim()).toBe("");
    expect(found.result.procs.trim()).toBe("0");
    for (const s of [text(r), text(spy)]) {
      expect(s).not.toContain(HEADER_KEY);
      expect(s).not.toContain(QUERY_KEY);
    }
    // nor does the sandbox's record through the API, nor the server's log
    const sandboxes = await (await api(h, "GET", "/v0/sandboxes")).text();
    expect(sandboxes).toContain("petstore-exec-");
    expect(sandboxes).toContain("ttl-idle");
    expect(sandboxes).not.toContain(HEADER_KEY);
    expect(sandboxes).not.toContain(QUERY_KEY);
    // the function's record shows the secret env empty
    expect(await (await api(h, "GET", "/v0/functions/petstore")).text()).not.toContain(QUERY_KEY);
    expect(h.output()).not.toContain(HEADER_KEY);
    expect(h.output()).not.toContain(QUERY_KEY);
  });

  it("returns a script that throws as a tool error, stops one that never ends, and the next call works", { timeout: 60_000 }, async () => {
    const bad = (await tool("execute").call({ code: `async () => { console.log("before"); throw new Error("boom-4711"); }` })) as Result;
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/boom-4711[\s\S]*before/);
    // a script that never ends is stopped at the time limit
    const hang = (await tool("execute").call({ code: `async () => { console.log("started"); for (;;) {} }` })) as Result;
    expect(hang.isError).toBe(true);
    expect(text(hang)).toMatch(/did not finish within 4 s/);
    // statements (not a function) run as an async function body
    const good = (await tool("execute").call({ code: `const r = await fetch("https://${HOST}/v1/pets"); return r.status;` })) as Result;
    expect(good.isError, text(good)).toBeFalsy();
    expect(JSON.parse(text(good))).toEqual({ result: 200 });
  });

  it("makes the execute sandbox again when it is gone (deleted, or expired after 10 idle minutes)", { timeout: 90_000 }, async () => {
    const list = (await (await api(h, "GET", "/v0/sandboxes")).json()) as { data: Array<{ metadata: { name: string } }> };
    const name = list.data.map((s) => s.metadata.name).find((n) => n.startsWith("petstore-exec-"))!;
    expect((await api(h, "DELETE", `/v0/sandboxes/${name}`)).status).toBe(200);
    const again = (await tool("execute").call({ code: `async () => (await fetch("https://${HOST}/v1/pets")).status` })) as Result;
    expect(again.isError, text(again)).toBeFalsy();
    expect(JSON.parse(text(again))).toEqual({ result: 200 });
    expect((await api(h, "GET", `/v0/sandboxes/${name}`)).status).toBe(200);
  });

  it("stops a search that never returns at its time limit, and the next search works", { timeout: 60_000 }, async () => {
    for (const code of ["async (spec) => { while (true) {} }", "async (spec) => { for (;;) await null; }", "(spec) => new Promise(() => {})"]) {
      const t0 = performance.now();
      const r = (await tool("search").call({ code })) as Result;
      expect(r.isError).toBe(true);
      expect(text(r)).toMatch(/time limit|timed out/);
      expect(performance.now() - t0).toBeLessThan(10_000);
    }
    const bad = (await tool("search").call({ code: "async (spec) => spec.nope.deeper" })) as Result;
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/TypeError/);
    // no process, require or network in a search
    const sandboxed = (await tool("search").call({ code: "async () => [typeof process, typeof require, typeof fetch]" })) as Result;
    expect(JSON.parse(text(sandboxed))).toEqual(["undefined", "undefined", "undefined"]);
    // a search that escapes the VM context (a host function's constructor reaches the child's own
    // require) runs as an unprivileged user: it cannot read the code-mode server's environment
    const escape = `async () => {
      const F = console.log.constructor.constructor;
      const p = F("return process")();
      const fs = F("return require")()("fs");
      let env;
      try { env = fs.readFileSync("/proc/" + p.ppid + "/environ", "utf8"); } catch (e) { env = e.code; }
      return { uid: p.getuid(), env };
    }`;
    const escaped = JSON.parse(text((await tool("search").call({ code: escape })) as Result)) as { uid: number; env: string };
    expect(escaped.uid).toBe(65534);
    expect(escaped.env).toBe("EACCES");
    const ok = (await tool("search").call({ code: "async (spec) => Object.keys(spec.paths)" })) as Result;
    expect(JSON.parse(text(ok))).toEqual(["/pets", "/pets/{petId}"]);
  });

  it("serves the official MCP client, @blaxel/langgraph (WebSocket, bridged) and @blaxel/llamaindex", { timeout: 90_000 }, async () => {
    const c = new Client({ name: "e2e", version: "1" });
    await c.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${h.apiKey}` } } }));
    expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(["execute", "search"]);
    await c.close();

    const require = createRequire(import.meta.url);
    require.resolve("@blaxel/langgraph");
    const langgraph = (await import("@blaxel/langgraph")) as unknown as { blTools: (n: string[]) => Promise<Array<{ name: string; invoke: (a: unknown) => Promise<unknown> }>> };
    const lg = await langgraph.blTools(["petstore"]);
    expect(lg.map((t) => t.name).sort()).toEqual(["execute", "search"]);
    expect(JSON.stringify(await lg.find((t) => t.name === "search")!.invoke({ code: "async (spec) => spec.info.title" }))).toContain("Pet Store");

    const llama = (await import("@blaxel/llamaindex")) as unknown as { blTools: (n: string[]) => Promise<Array<{ metadata: { name: string }; call: (a: unknown) => Promise<unknown> }>> };
    const li = await llama.blTools(["petstore"]);
    expect(li.map((t) => t.metadata.name).sort()).toEqual(["execute", "search"]);
    const out = await li.find((t) => t.metadata.name === "execute")!.call({ code: `async () => (await fetch("https://${HOST}/v1/pets?limit=1")).status` });
    expect(JSON.stringify(out)).toContain("200");
    expect(JSON.stringify(out)).not.toContain(HEADER_KEY);
  });

  it("reads OPENAPI_REFERENCE from a file of the deployed zip (YAML)", { timeout: 240_000 }, async () => {
    const yaml = [
      "openapi: 3.0.3",
      "info:",
      "  title: Pet Store (from the zip)",
      '  version: "1"',
      "servers:",
      `  - url: https://${HOST}/v1`,
      "paths:",
      "  /pets:",
      "    get:",
      "      responses:",
      '        "200":',
      "          description: pets",
      "          content:",
      "            application/json:",
      "              schema:",
      "                type: array",
      "                items:",
      '                  $ref: "#/components/schemas/Pet"',
      "components:",
      "  schemas:",
      "    Pet:",
      "      type: object",
      "      properties:",
      "        name:",
      "          type: string",
      "",
    ].join("\n");
    const res = await api(h, "PUT", "/v0/functions/petfiles?upload=true", { metadata: { name: "petfiles" }, spec: { runtime: { image: "blaxel/code-mode:latest", memory: 512, envs: [{ name: "OPENAPI_REFERENCE", value: "specs/openapi.yaml" }] } } });
    expect(res.status).toBe(200);
    const up = await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles({ "specs/openapi.yaml": yaml }) });
    expect(up.status).toBe(200);
    await deployed("petfiles", 220_000);
    const { getTool } = await import("@blaxel/core");
    const search = ((await getTool("petfiles")) as Tool[]).find((t) => t.name === "search")!;
    const r = (await search.call({ code: `async (spec) => [spec.info.title, spec.paths["/pets"].get.responses["200"].content["application/json"].schema.items.properties.name.type]` })) as Result;
    expect(JSON.parse(text(r))).toEqual(["Pet Store (from the zip)", "string"]);
  });

  it("fails the deployment with the reason when OPENAPI_REFERENCE cannot be read", { timeout: 60_000 }, async () => {
    const res = await api(h, "PUT", "/v0/functions/broken", {
      metadata: { name: "broken" },
      spec: { runtime: { image: "blaxel/code-mode", memory: 512, envs: [{ name: "OPENAPI_REFERENCE", value: "missing/openapi.yaml" }] } },
    });
    expect(res.status).toBe(200);
    await expect(deployed("broken", 50_000)).rejects.toThrow(/FAILED[\s\S]*could not read the OpenAPI document/);
  });

  it("deleting the function deletes its execute sandboxes, and no other sandbox", { timeout: 60_000 }, async () => {
    const names = async () => ((await (await api(h, "GET", "/v0/sandboxes")).json()) as { data: Array<{ metadata: { name: string } }> }).data.map((s) => s.metadata.name);
    const exec = (await names()).filter((n) => /^petstore-exec-[0-9a-f]{8}$/.test(n));
    expect(exec.length).toBeGreaterThan(0);
    // a user's sandboxes: one with the name's shape but not the label, one with the label but another name
    for (const [name, labels] of [["petstore-exec-0badc0de", {}], ["petstore-mine", { "hangar-code-mode": "petstore" }]] as const) {
      expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name, labels }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
    }
    expect((await api(h, "DELETE", "/v0/functions/petstore")).status).toBe(200);
    for (const n of exec) {
      const t0 = Date.now();
      while ((await api(h, "GET", `/v0/sandboxes/${n}`)).status !== 404 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 200));
      expect((await api(h, "GET", `/v0/sandboxes/${n}`)).status).toBe(404);
    }
    expect(await names()).toEqual(expect.arrayContaining(["petstore-exec-0badc0de", "petstore-mine"]));
  });
});
