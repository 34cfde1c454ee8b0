// Welcome, health, CORS and the endpoints this node answers with not_configured; Relace fast apply.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { raw, startSandbox, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;
let relace: Server;
const relaceBodies: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  relace = createServer((req, res) => {
    let b = "";
    req.on("data", (c: Buffer) => (b += c));
    req.on("end", () => {
      const body = JSON.parse(b) as Record<string, unknown>;
      relaceBodies.push({ ...body, auth: req.headers.authorization });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ mergedCode: `${String(body.initial_code)}${String(body.edit_snippet)}` }));
    });
  });
  await new Promise<void>((r) => relace.listen(0, "127.0.0.1", r));
  h = await startSandbox({ env: { RELACE_API_KEY: "rl-key", RELACE_API_URL: `http://127.0.0.1:${(relace.address() as AddressInfo).port}/v1/code/apply` } });
});
afterAll(async () => {
  await h?.stop();
  relace?.close();
});

describe("system routes", () => {
  it("welcomes on / for any method and reports health per the wire spec", async () => {
    for (const m of ["GET", "POST", "DELETE"]) expect((await raw(h.port, m, "/")).json()).toMatchObject({ message: expect.stringContaining("Welcome") });
    const health = (await raw(h.port, "GET", "/health")).json<Record<string, unknown>>();
    expect(health).toMatchObject({ status: "ok", version: "0.1.0", upgradeCount: 0, os: "linux", lastUpgrade: { status: "idle" }, sandbox: "test" });
    expect(health.uptime).toMatch(/^\d+(\.\d+)?(ms|s)$|^\d+m\d+s$/);
    expect(typeof health.uptimeSeconds).toBe("number");
    expect(health.startedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect((await raw(h.port, "HEAD", "/health")).status).toBe(200);
  });

  it("allows cross-origin calls and answers preflights", async () => {
    const r = await raw(h.port, "GET", "/health", undefined, { origin: "https://example.com" });
    expect(r.headers["access-control-allow-origin"]).toBe("*");
    const pre = await raw(h.port, "OPTIONS", "/process", undefined, { origin: "https://example.com", "access-control-request-method": "POST" });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-methods"]).toContain("POST");
  });

  it("answers not_configured (503) for features this node does not offer, and lists no drives", async () => {
    expect((await raw(h.port, "GET", "/drives/mount")).json()).toEqual({ mounts: [] });
    for (const [m, p] of [
      ["POST", "/drives/mount"],
      ["DELETE", "/drives/mount/mnt%2Fd"],
      ["PUT", "/network/tunnel/config"],
      ["DELETE", "/network/tunnel"],
      ["POST", "/upgrade"],
      ["POST", "/archive/export"],
      ["GET", "/archive/status"],
      ["POST", "/environment/reload"],
    ] as const) {
      const r = await raw(h.port, m, p, m === "GET" || m === "DELETE" ? undefined : {});
      expect(r.status, `${m} ${p}`).toBe(503);
      expect(r.json<{ type: string; error: string }>().type, `${m} ${p}`).toBe("urn:hangar:problem:not_configured");
    }
    const nf = await raw(h.port, "GET", "/no/such/route");
    expect(nf.status).toBe(404);
    expect(nf.json<{ error: string }>().error).toContain("/no/such/route");
  });

  it("fast-applies through Relace when RELACE_API_KEY is set", async () => {
    await raw(h.port, "PUT", "/filesystem/%2Ftmp%2Fr.ts", { content: "a();\n" });
    const r = await raw(h.port, "PUT", "/codegen/fastapply/%2Ftmp%2Fr.ts", { codeEdit: "b();\n" });
    expect(r.json()).toMatchObject({ success: true, provider: "Relace", originalContent: "a();\n", updatedContent: "a();\nb();\n" });
    expect(relaceBodies[0]).toMatchObject({ initial_code: "a();\n", edit_snippet: "b();\n", model: "auto", stream: false, auth: "Bearer rl-key" });
    expect((await raw(h.port, "GET", "/filesystem/%2Ftmp%2Fr.ts")).json<{ content: string }>().content).toBe("a();\nb();\n");
  });
});
