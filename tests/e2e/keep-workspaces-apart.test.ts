// An operator creates workspaces and keys; every call is authenticated and a key reaches only
// its own workspaces — on the control plane and on the sandbox data plane.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar } from "./harness.js";

let h: RunningHangar;
let keyB: string;
let keyBId: string;

const as = (key: string, ws: string) => ({ authorization: `Bearer ${key}`, "x-blaxel-workspace": ws });

beforeAll(async () => {
  h = await startHangar();
  expect((await api(h, "POST", "/v0/workspaces", { name: "team-b" })).status).toBe(200);
  const res = await api(h, "POST", "/v0/api-keys", { name: "b-key", workspaces: ["team-b"] }, { "x-blaxel-workspace": "team-b" });
  expect(res.status).toBe(200);
  const k = (await res.json()) as { apiKey: string; id: string; prefix: string };
  expect(k.apiKey).toMatch(/^hgr_/);
  keyB = k.apiKey;
  keyBId = k.id;
  expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "a-box" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
});

afterAll(async () => {
  await h?.dispose();
});

describe("authentication", () => {
  it("refuses calls without a key, with an unknown key, or with a malformed header", async () => {
    for (const headers of [{}, { authorization: "Bearer hgr_nope" }, { authorization: "Basic abc" }]) {
      const res = await fetch(`${h.url}/v0/sandboxes`, { headers: { "x-blaxel-workspace": "default", ...headers } });
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ status: 401, code: 401, type: "urn:hangar:problem:unauthorized" });
      expect(typeof body.detail).toBe("string");
    }
  });

  it("accepts the key in x-blaxel-authorization and in Authorization, and ?workspace=", async () => {
    const viaBlaxel = await fetch(`${h.url}/v0/sandboxes/a-box`, { headers: { "x-blaxel-authorization": `Bearer ${h.apiKey}`, "x-blaxel-workspace": "default" } });
    expect(viaBlaxel.status).toBe(200);
    const viaQuery = await fetch(`${h.url}/v0/sandboxes/a-box?workspace=default`, { headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(viaQuery.status).toBe(200);
  });

  it("never returns a key's secret after creation, only its prefix", async () => {
    const list = (await (await api(h, "GET", "/v0/api-keys", undefined, { "x-blaxel-workspace": "team-b" })).json()) as Record<string, unknown>[];
    const b = list.find((k) => k.id === keyBId)!;
    expect(b.apiKey).toBeUndefined();
    expect(JSON.stringify(list)).not.toContain(keyB);
    expect(b.prefix).toBe(keyB.slice(0, 8));
  });

  it("shows a team key neither the admin key's secret nor the workspaces it cannot reach", async () => {
    const list = (await (await api(h, "GET", "/v0/api-keys", undefined, as(keyB, "team-b"))).json()) as { prefix: string; admin: boolean; workspaces: string[] }[];
    const admin = list.find((k) => k.admin)!; // the admin key reaches team-b too
    expect(admin.workspaces).toEqual(["team-b"]);
    expect(admin.prefix.length).toBeLessThanOrEqual(8);
    expect(h.apiKey.startsWith(admin.prefix)).toBe(true);
    expect(h.apiKey.length - admin.prefix.length).toBeGreaterThanOrEqual(h.apiKey.length * 0.75);
  });
});

describe("tenancy", () => {
  it("keeps workspace B's key out of workspace A's sandboxes, on the control plane and the data plane", async () => {
    expect((await api(h, "GET", "/v0/sandboxes/a-box", undefined, as(keyB, "default"))).status).toBe(403);
    expect((await api(h, "GET", "/v0/sandboxes", undefined, as(keyB, "default"))).status).toBe(403);
    expect((await api(h, "DELETE", "/v0/sandboxes/a-box", undefined, as(keyB, "default"))).status).toBe(403);
    expect((await api(h, "POST", "/run/default/sandboxes/a-box/process", { command: "id", waitForCompletion: true }, as(keyB, "default"))).status).toBe(403);
    expect((await api(h, "GET", "/run/default/sandboxes/a-box/filesystem/%2Fetc%2Fhostname", undefined, as(keyB, "team-b"))).status).toBe(403);
    // In its own workspace, the name does not exist.
    expect((await api(h, "GET", "/v0/sandboxes/a-box", undefined, as(keyB, "team-b"))).status).toBe(404);
    const own = (await (await api(h, "GET", "/v0/sandboxes", undefined, as(keyB, "team-b"))).json()) as { data: unknown[] };
    expect(own.data).toEqual([]);
  });

  it("does not let a workspace key create workspaces or admin keys", async () => {
    expect((await api(h, "POST", "/v0/workspaces", { name: "team-c" }, as(keyB, "team-b"))).status).toBe(403);
    expect((await api(h, "POST", "/v0/api-keys", { name: "x", admin: true }, as(keyB, "team-b"))).status).toBe(403);
    expect((await api(h, "POST", "/v0/api-keys", { name: "x", workspaces: ["default"] }, as(keyB, "team-b"))).status).toBe(403);
  });

  it("stops honouring a revoked key at once", async () => {
    expect((await api(h, "GET", "/v0/sandboxes", undefined, as(keyB, "team-b"))).status).toBe(200);
    expect((await api(h, "DELETE", `/v0/api-keys/${keyBId}`, undefined, { "x-blaxel-workspace": "team-b" })).status).toBe(200);
    const res = await api(h, "GET", "/v0/sandboxes", undefined, as(keyB, "team-b"));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/revoked/);
  });
});

describe("Blaxel-Version", () => {
  it("returns bare arrays before 2026-04-28, pages after, and 400 for unknown versions", async () => {
    const old = await api(h, "GET", "/v0/sandboxes", undefined, { "blaxel-version": "2026-04-16" });
    expect(Array.isArray(await old.json())).toBe(true);
    const none = await fetch(`${h.url}/v0/sandboxes`, { headers: { authorization: `Bearer ${h.apiKey}`, "x-blaxel-workspace": "default" } });
    expect(Array.isArray(await none.json())).toBe(true);
    const paged = (await (await api(h, "GET", "/v0/sandboxes")).json()) as { data: unknown[]; meta: { hasMore: boolean; total: number } };
    expect(paged.meta).toMatchObject({ hasMore: false, total: 1 });
    const bad = await api(h, "GET", "/v0/sandboxes", undefined, { "blaxel-version": "1999-01-01" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid_api_version", status: 400 });
  });
});
