// A client sends garbage: every answer is a clear 4xx problem body, the server keeps serving and
// nothing already stored is lost.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar } from "./harness.js";

let h: RunningHangar;

beforeAll(async () => {
  h = await startHangar();
  expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "precious" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
});

afterAll(async () => {
  await h?.dispose();
});

async function expectProblem(res: Response, status: number, detail?: RegExp): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, code: status });
  expect(typeof body.type).toBe("string");
  expect(typeof body.title).toBe("string");
  expect(typeof body.detail).toBe("string");
  expect(body.error).toBe(body.detail);
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

describe("bad input", () => {
  it("malformed JSON", async () => {
    await expectProblem(await api(h, "POST", "/v0/sandboxes", "{\"metadata\": {"), 400, /JSON/);
    await expectProblem(await api(h, "PUT", "/v0/sandboxes/precious", "not json at all"), 400, /JSON/);
  });

  it("oversized bodies", async () => {
    const huge = JSON.stringify({ metadata: { name: "big", labels: { x: "y".repeat(3 * 1024 * 1024) } } });
    await expectProblem(await api(h, "POST", "/v0/sandboxes", huge), 413);
  });

  it("bad names, external ids, memory, ports, enums and durations", async () => {
    const create = (metadata: unknown, runtime: unknown = {}, extra: Record<string, unknown> = {}) => api(h, "POST", "/v0/sandboxes", { metadata, spec: { runtime: { memory: 256, ...(runtime as object) }, ...extra } });
    await expectProblem(await create({ name: "Has_Caps" }), 400, /lowercase/);
    await expectProblem(await create({ name: "x".repeat(50) }), 400, /at most 49/);
    await expectProblem(await create({ name: "-dash" }), 400);
    await expectProblem(await create({ name: "ok-name", externalId: "has space" }), 400, /externalId/);
    await expectProblem(await create({ name: "ok-name", externalId: "x".repeat(65) }), 400, /externalId/);
    await expectProblem(await create({ name: "ok-name" }, { memory: 1 }), 400, /memory/);
    await expectProblem(await create({ name: "ok-name" }, { memory: "lots" }), 400, /memory/);
    await expectProblem(await create({ name: "ok-name" }, { ports: [{ target: 443 }] }), 400, /reserved/);
    await expectProblem(await create({ name: "ok-name" }, { ports: [{ target: 443 }] }), 400, /reserved/);
    await expectProblem(await create({ name: "ok-name" }, { ports: [{ target: 3000, protocol: "SMTP" }] }), 400, /HTTP, TCP, UDP, TLS/);
    await expectProblem(await create({ name: "ok-name" }, { ttl: "1 year" }), 400, /ttl/);
    await expectProblem(await create({ name: "ok-name" }, {}, { lifecycle: { expirationPolicies: [{ type: "whenever", value: "1h", action: "delete" }] } }), 400);
    await expectProblem(await create({ name: "ok-name" }, { image: "no/such-image:1" }), 400, /image/i);
    await expectProblem(await create({ name: "ok-name" }, { image: "../../etc/passwd" }), 400, /image/i);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?limit=0"), 400);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?sort=name:asc&anchor=end"), 400, /anchor=end: only with a createdAt sort/);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?sort=size:asc"), 400, /must be one of "createdAt:desc", "createdAt:asc", "name:asc", "name:desc"/);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?status=HAPPY"), 400, /status/);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?cursor=bm9wZQ"), 400, /cursor/);
    await expectProblem(await api(h, "GET", "/v0/sandboxes?workspace=&limit=abc"), 400);
    await expectProblem(await api(h, "GET", "/v0/nowhere"), 404);
  });

  it("refuses renaming, image and isolation changes on PUT, and non-object bodies", async () => {
    const cur = (await (await api(h, "GET", "/v0/sandboxes/precious")).json()) as { metadata: object; spec: { runtime: object } };
    await expectProblem(await api(h, "PUT", "/v0/sandboxes/precious", { ...cur, metadata: { ...cur.metadata, name: "renamed" } }), 400, /renamed/);
    await expectProblem(await api(h, "PUT", "/v0/sandboxes/precious", { ...cur, spec: { ...cur.spec, runtime: { ...cur.spec.runtime, image: "hangar/base" } } }), 400, /image/);
    await expectProblem(await api(h, "PUT", "/v0/sandboxes/precious", { ...cur, spec: { ...cur.spec, runtime: { ...cur.spec.runtime, runtimeClass: "gvisor" } } }), 400, /runtimeClass/);
    await expectProblem(await api(h, "POST", "/v0/sandboxes", "[1,2,3]"), 400);
    await expectProblem(await api(h, "POST", "/v0/sandboxes", "\"string\""), 400);
  });

  it("refuses a port-monitor callback that would make the host call itself", async () => {
    const p = (await (await api(h, "POST", "/run/default/sandboxes/precious/process", { command: "sleep 30", name: "watched" })).json()) as { pid: string };
    for (const callback of [`${h.url}/v0/sandboxes`, "http://localhost:22/", "http://169.254.169.254/latest/meta-data"]) {
      await expectProblem(await api(h, "POST", `/run/default/sandboxes/precious/network/process/${p.pid}/monitor`, { callback }), 403, /not allowed/);
    }
    await expectProblem(await api(h, "POST", `/run/default/sandboxes/precious/network/process/${p.pid}/monitor`, { callback: "not a url" }), 400);
  });

  it("takes a bodiless request that names a JSON Content-Type as bodiless", async () => {
    expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "short-lived" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
    const res = await fetch(`${h.url}/v0/sandboxes/short-lived`, { method: "DELETE", headers: { authorization: `Bearer ${h.apiKey}`, "x-blaxel-workspace": "default", "content-type": "application/json" } });
    expect(res.status).toBe(200);
    const deadline = Date.now() + 30_000;
    while ((await api(h, "GET", "/v0/sandboxes/short-lived")).status !== 404 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  });

  it("keeps serving and keeps what was stored", async () => {
    const health = await fetch(`${h.url}/health`);
    expect(health.status).toBe(200);
    const sb = (await (await api(h, "GET", "/v0/sandboxes/precious")).json()) as { status: string };
    expect(sb.status).toBe("DEPLOYED");
    const list = (await (await api(h, "GET", "/v0/sandboxes")).json()) as { data: { metadata: { name: string } }[] };
    expect(list.data.map((s) => s.metadata.name)).toEqual(["precious"]);
  });

  it("publishes an OpenAPI document generated from the route schemas", async () => {
    const doc = (await (await fetch(`${h.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v0/sandboxes", "/v0/sandboxes/{name}", "/v0/workspaces", "/v0/api-keys"]));
  });
});
