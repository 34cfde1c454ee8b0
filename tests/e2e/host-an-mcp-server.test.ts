// A user hosts an MCP server (a "function"): source using the official MCP TypeScript SDK,
// deployed from source, whose tools the unmodified @blaxel/core lists and calls on its run URL.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst, zipFiles } from "./harness.js";

let h: RunningHangar;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
});

afterAll(async () => {
  await h?.dispose();
});

/** Streamable HTTP, stateless, JSON responses: Blaxel's template-mcp-ts with Node's http. */
const SERVER = `
const http = require("http");
const { McpServer } = require("@modelcontextprotocol/sdk/server/mcp.js");
const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
const { z } = require("zod");
function server() {
  const s = new McpServer({ name: "weather", version: "1.0.0" });
  s.tool("forecast", "The forecast for a city", { city: z.string() }, async ({ city }) => ({ content: [{ type: "text", text: "sunny in " + city }] }));
  s.tool("crash", "Exits the server", {}, async () => process.exit(5));
  return s;
}
http.createServer(async (req, res) => {
  if (!req.url.startsWith("/mcp")) { res.statusCode = 404; return res.end(); }
  if (req.method !== "POST") { res.statusCode = 405; return res.end(); }
  let body = "";
  for await (const c of req) body += c;
  const s = server();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => { transport.close(); s.close(); });
  await s.connect(transport);
  await transport.handleRequest(req, res, JSON.parse(body));
}).listen(Number(process.env.PORT), process.env.HOST);
`;

const FILES = {
  "package.json": JSON.stringify({ name: "weather", version: "1.0.0", private: true, scripts: { start: "node server.js" }, dependencies: { "@modelcontextprotocol/sdk": "1.32.2", zod: "3.25.76" } }),
  "server.js": SERVER,
};

describe("hosting an MCP server", () => {
  it("deploys a Streamable HTTP MCP server from source (no Dockerfile) and @blaxel/core lists and calls its tools", { timeout: 240_000 }, async () => {
    const res = await api(h, "PUT", "/v0/functions/weather?upload=true", { metadata: { name: "weather" }, spec: { runtime: { memory: 1024, transport: "http-stream" } } });
    expect(res.status).toBe(200);
    const up = await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles(FILES) });
    expect(up.status).toBe(200);
    const deadline = Date.now() + 220_000;
    let fn: { status: string; metadata: { url: string }; events: { message: string }[] };
    for (;;) {
      fn = (await (await api(h, "GET", "/v0/functions/weather")).json()) as typeof fn;
      if (fn.status === "DEPLOYED") break;
      if (fn.status === "FAILED" || Date.now() > deadline) throw new Error(`function: ${fn.status} ${JSON.stringify(fn.events.at(-1))}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(fn.metadata.url).toBe(`${h.url}/run/default/functions/weather`);

    const { getTool } = await import("@blaxel/core");
    const tools = (await getTool("weather")) as Array<{ name: string; call: (args: unknown) => Promise<unknown> }>;
    expect(tools.map((t) => t.name).sort()).toEqual(["crash", "forecast"]);
    const forecast = tools.find((t) => t.name === "forecast")!;
    expect(JSON.stringify(await forecast.call({ city: "Lyon" }))).toContain("sunny in Lyon");
    // a server that crashes mid-call: that call fails, the server is restarted, later calls work
    await expect(tools.find((t) => t.name === "crash")!.call({})).rejects.toBeDefined();
    let after = "";
    for (let i = 0; i < 50 && !after.includes("sunny"); i++) {
      after = await forecast.call({ city: "Nantes" }).then((r) => JSON.stringify(r), (e: Error) => e.message);
      if (!after.includes("sunny")) await new Promise((r) => setTimeout(r, 200));
    }
    expect(after).toContain("sunny in Nantes");

    // a private function refuses a wrong key, with Hangar's own answer
    const wrong = await fetch(`${h.url}/run/default/functions/weather/mcp`, { method: "POST", headers: { authorization: "Bearer hgr_wrong", "content-type": "application/json" }, body: "{}" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("x-blaxel-source")).toBe("platform");
  });

  it("refuses an unknown transport", async () => {
    const res = await api(h, "PUT", "/v0/functions/bad", { metadata: { name: "bad" }, spec: { runtime: { transport: "carrier-pigeon" } } });
    expect(res.status).toBe(400);
  });
});
