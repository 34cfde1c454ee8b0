import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiHosts, authEnvName, credentialRules } from "./openapi.js";
import { executeWrapper, parseExecuteOutput } from "./scripts.js";

const BUNDLE = fileURLToPath(new URL("../dist/code-mode.cjs", import.meta.url));

const DOC = {
  openapi: "3.1.0",
  info: { title: "Things", version: "1" },
  servers: [{ url: "https://api.things.test/v2" }, { url: "/relative" }],
  paths: {
    "/things/{id}": { get: { summary: "one thing", responses: { "200": { description: "ok", content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } } } } } },
  },
  components: {
    schemas: { Thing: { type: "object", properties: { id: { type: "string" }, parent: { $ref: "#/components/schemas/Thing" }, tag: { $ref: "#/components/schemas/Tag" } } }, Tag: { type: "string", enum: ["a", "b"] } },
    securitySchemes: {
      Bearer: { type: "http", scheme: "bearer" },
      basic_auth: { type: "http", scheme: "basic" },
      HeaderKey: { type: "apiKey", in: "header", name: "X-Key" },
      QueryKey: { type: "apiKey", in: "query", name: "key" },
      OAuth: { type: "oauth2", flows: {} },
      Unused: { type: "apiKey", in: "header", name: "X-Unused" },
    },
  },
};

describe("credential rules from the security schemes", () => {
  it("maps each scheme with an AUTH_<SCHEME> env to an injection rule for the API's hosts", () => {
    const hosts = apiHosts(DOC, "http://docs.things.test/openapi.json");
    expect(hosts).toEqual(["api.things.test", "docs.things.test"]);
    expect(authEnvName("basic_auth")).toBe("AUTH_BASIC_AUTH");
    const { rules, schemes } = credentialRules(DOC, ["api.things.test"], { AUTH_BEARER: "t0k", AUTH_BASIC_AUTH: "me:pw", AUTH_HEADERKEY: "hk", AUTH_QUERYKEY: "qk", AUTH_OAUTH: "oa" });
    expect(schemes).toEqual(["Bearer", "basic_auth", "HeaderKey", "QueryKey", "OAuth"]);
    expect(rules).toEqual([
      { destinations: ["api.things.test"], headers: { Authorization: "Bearer {{SECRET:auth-0}}" }, secrets: { "auth-0": "t0k" } },
      { destinations: ["api.things.test"], headers: { Authorization: "Basic {{SECRET:auth-1}}" }, secrets: { "auth-1": Buffer.from("me:pw").toString("base64") } },
      { destinations: ["api.things.test"], headers: { "X-Key": "{{SECRET:auth-2}}" }, secrets: { "auth-2": "hk" } },
      { destinations: ["api.things.test"], query: { key: "{{SECRET:auth-3}}" }, secrets: { "auth-3": "qk" } },
      { destinations: ["api.things.test"], headers: { Authorization: "Bearer {{SECRET:auth-4}}" }, secrets: { "auth-4": "oa" } },
    ]);
    // a document from a file: relative servers name no host
    expect(apiHosts(DOC, "/blaxel/openapi.json")).toEqual(["api.things.test"]);
  });
});

describe("execute's wrapper", () => {
  it("reports the result, the console output, or the error", () => {
    const mark = (o: unknown) => `noise\n${executeWrapper("").includes("@@hangar-code-mode-result@@") ? "@@hangar-code-mode-result@@" : ""}${JSON.stringify(o)}\n`;
    expect(parseExecuteOutput(mark({ result: { a: 1 }, logs: ["x"] }), "", 0, 60)).toEqual({ result: { a: 1 }, logs: ["x"] });
    expect(parseExecuteOutput(mark({ error: "Error: no", logs: [] }), "", 1, 60).error).toMatch(/threw: Error: no/);
    expect(parseExecuteOutput("", "", 137, 60).error).toMatch(/within 60 s/);
  });
});

describe("the code-mode server (bundle)", () => {
  let docs: Server;
  let proc: ChildProcess;
  let client: Client;
  const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0]!.text;

  beforeAll(async () => {
    docs = createServer((_req, res) => res.end(JSON.stringify(DOC))).listen(0, "127.0.0.1");
    await once(docs, "listening");
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    proc = spawn(process.execPath, [BUNDLE], {
      env: { PATH: process.env.PATH, HOST: "127.0.0.1", PORT: String(port), OPENAPI_REFERENCE: `http://127.0.0.1:${(docs.address() as AddressInfo).port}/openapi.json`, CODE_MODE_SEARCH_TIMEOUT_MS: "1500" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d));
    for (let i = 0; !err.includes("serving Things"); i++) {
      if (i > 100) throw new Error(`the server did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    client = new Client({ name: "t", version: "1" });
    for (let i = 0; ; i++) {
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
        break;
      } catch (e) {
        if (i > 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });

  afterAll(async () => {
    await client?.close();
    proc?.kill();
    docs?.close();
  });

  it("lists search and execute; search sees the document dereferenced (a recursion written as a $ref)", async () => {
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["search", "execute"]);
    const r = await client.callTool({ name: "search", arguments: { code: `async (spec) => spec.paths["/things/{id}"].get.responses["200"].content["application/json"].schema.properties` } });
    const props = JSON.parse(text(r)) as { tag: { enum: string[] }; parent: unknown };
    expect(props.tag.enum).toEqual(["a", "b"]);
    expect(props.parent).toEqual({ $ref: "#/components/schemas/Thing" });
  });

  it("stops a search at its time limit and has no process, require or network", async () => {
    const loop = await client.callTool({ name: "search", arguments: { code: "async () => { for (;;) await null; }" } });
    expect(loop.isError).toBe(true);
    expect(text(loop)).toMatch(/time limit/);
    const bare = await client.callTool({ name: "search", arguments: { code: "async () => [typeof process, typeof require, typeof fetch, typeof globalThis.spec]" } });
    expect(JSON.parse(text(bare))).toEqual(["undefined", "undefined", "undefined", "object"]);
  });

  it("answers execute with a clear error when it is not in a Hangar replica", async () => {
    const r = await client.callTool({ name: "execute", arguments: { code: "async () => 1" } });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/BL_API_URL/);
  });
});
