// Sandboxes delete themselves when their TTL, date or lifecycle policy is met (the first met
// wins): TERMINATED, every trace removed, then the record goes — never early, and across restarts.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, httpRequest, startHangar } from "./harness.js";

let h: RunningHangar;

type Sbx = { status: string; expiresIn?: number; metadata: { name: string } };

async function create(name: string, runtime: Record<string, unknown>, lifecycle?: unknown): Promise<Sbx> {
  const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name }, spec: { runtime: { memory: 256, ...runtime }, ...(lifecycle ? { lifecycle } : {}) } });
  expect(res.status).toBe(200);
  return (await res.json()) as Sbx;
}

async function get(name: string): Promise<{ code: number; body: Sbx }> {
  const res = await api(h, "GET", `/v0/sandboxes/${name}`);
  return { code: res.status, body: (await res.json()) as Sbx };
}

/** Polls until the sandbox is TERMINATED (or gone); returns when that happened (ms since epoch). */
async function terminatedAt(name: string, withinMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const s = await get(name);
    if (s.code === 404) return Date.now();
    if (s.body.status === "TERMINATED") {
      expect((s.body as { state?: string }).state).toBeUndefined(); // neither running nor parked
      return Date.now();
    }
    if (Date.now() - t0 > withinMs) throw new Error(`${name} still ${s.body.status} after ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function exec(name: string, command: string): Promise<Response> {
  return api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, waitForCompletion: true });
}

beforeAll(async () => {
  h = await startHangar();
});

afterAll(async () => {
  await h?.dispose();
});

describe("expiry", () => {
  it("ttl: deleted after its max age, not before; expiresIn counts down", async () => {
    const t0 = Date.now();
    const s = await create("ttl-box", { ttl: "3s" });
    expect(s.expiresIn).toBeGreaterThanOrEqual(2);
    expect(s.expiresIn).toBeLessThanOrEqual(3);
    const at = await terminatedAt("ttl-box", 10_000);
    expect(at - t0).toBeGreaterThanOrEqual(3_000);
    const after = await get("ttl-box");
    expect(after.body.status).toBe("TERMINATED");
    expect((await exec("ttl-box", "true")).status).toBe(503);
    // The name is free again while the terminated record is kept.
    expect((await create("ttl-box", {})).status).toBe("DEPLOYED");
  });

  it("expires: deleted at the date", async () => {
    const when = Date.now() + 2_500;
    await create("dated", { expires: new Date(when).toISOString() });
    const at = await terminatedAt("dated", 10_000);
    expect(at).toBeGreaterThanOrEqual(when);
  });

  it("ttl-idle: activity postpones it; idleness ends it", async () => {
    await create("idler", {}, { expirationPolicies: [{ type: "ttl-idle", value: "3s", action: "delete" }] });
    const t0 = Date.now();
    let lastUse = t0;
    // Busy for 5 s: a command every second keeps it alive past its idle TTL.
    while (Date.now() - t0 < 5_000) {
      expect((await exec("idler", "true")).status).toBe(200);
      lastUse = Date.now();
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect((await get("idler")).body.status).toBe("DEPLOYED");
    const at = await terminatedAt("idler", 10_000);
    expect(at - lastUse).toBeGreaterThanOrEqual(3_000);
  });

  it("ttl-max-age and date policies, combined: the first met wins", async () => {
    const t0 = Date.now();
    await create("combined", { ttl: "1h" }, {
      expirationPolicies: [
        { type: "date", value: new Date(Date.now() + 60_000).toISOString(), action: "delete" },
        { type: "ttl-max-age", value: "2s", action: "delete" },
      ],
    });
    const at = await terminatedAt("combined", 10_000);
    expect(at - t0).toBeGreaterThanOrEqual(2_000);
    expect(at - t0).toBeLessThan(10_000);
  });

  it("clearing the TTL through PUT keeps the sandbox", async () => {
    await create("reprieved", { ttl: "3s" });
    const cur = (await (await api(h, "GET", "/v0/sandboxes/reprieved")).json()) as { spec: { runtime: Record<string, unknown> } };
    const res = await api(h, "PUT", "/v0/sandboxes/reprieved", { ...cur, spec: { ...cur.spec, runtime: { ...cur.spec.runtime, ttl: null } } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Sbx).expiresIn).toBeUndefined();
    await new Promise((r) => setTimeout(r, 4_000));
    expect((await get("reprieved")).body.status).toBe("DEPLOYED");
  });

  it("a preview with a ttl stops serving when it is met", async () => {
    await create("ttl-preview", { ports: [{ target: 3000 }] });
    const web = await api(h, "POST", "/run/default/sandboxes/ttl-preview/process", { command: "python3 -m http.server 3000 --bind 0.0.0.0", workingDir: "/etc", waitForPorts: [3000] });
    expect(web.status).toBe(200);
    const res = await api(h, "POST", "/v0/sandboxes/ttl-preview/previews", { metadata: { name: "brief" }, spec: { port: 3000, public: true, ttl: "3s" } });
    expect(res.status).toBe(200);
    const url = ((await res.json()) as { spec: { url: string } }).spec.url;
    expect((await httpRequest(`${url}/hostname`)).status).toBe(200);
    const t0 = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - t0 < 10_000) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await httpRequest(`${url}/hostname`)).status;
    }
    expect(status).toBe(401);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
  });

  it("removes the terminated record after its retention", async () => {
    await create("retained", { ttl: "1s" }, { terminatedRetention: "2s" });
    await terminatedAt("retained", 10_000);
    const t0 = Date.now();
    while ((await get("retained")).code !== 404) {
      expect(Date.now() - t0).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it("keeps counting across a restart and never deletes early", async () => {
    const t0 = Date.now();
    await create("survivor", { ttl: "6s" });
    await h.kill9();
    h = await h.restart();
    expect((await get("survivor")).body.status).toBe("DEPLOYED");
    const at = await terminatedAt("survivor", 15_000);
    expect(at - t0).toBeGreaterThanOrEqual(6_000);
  });
});
