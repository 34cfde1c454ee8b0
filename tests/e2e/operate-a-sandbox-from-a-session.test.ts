// A backend hands a browser a session; the browser drives the sandbox's files and processes with
// the session token alone — and that token opens nothing else.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, httpRequest, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let SandboxInstance: typeof import("@blaxel/core").SandboxInstance;
let owner: import("@blaxel/core").SandboxInstance;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  ({ SandboxInstance } = await import("@blaxel/core"));
  owner = await SandboxInstance.create({ name: "session-box", memory: 512 });
  await SandboxInstance.create({ name: "other-box", memory: 256 });
});

afterAll(async () => {
  await h?.dispose();
});

describe("sessions", () => {
  it("lets fromSession() run processes, read logs and write files with only the session token", async () => {
    const session = await owner.sessions.create({ expiresAt: new Date(Date.now() + 3_600_000) });
    expect(session.url).toMatch(new RegExp(`^${h.url}/preview/[a-z0-9]+$`));
    expect(session.token).toMatch(/^hpt_/);
    const remote = await SandboxInstance.fromSession(session);
    const r = await remote.process.exec({ command: "echo from-session; hostname", waitForCompletion: true });
    expect(r.stdout).toBe("from-session\nsession-box\n");
    await remote.process.exec({ name: "talker", command: "echo one; sleep 0.3; echo two" });
    await remote.process.wait("talker", { maxWait: 10_000, interval: 100 });
    expect(await remote.process.logs("talker")).toBe("one\ntwo\n");
    await remote.fs.write("/tmp/from-session.txt", "hello");
    expect(await owner.fs.read("/tmp/from-session.txt")).toBe("hello");
  });

  it("streams logs and file-watch events through a session", async () => {
    const session = await owner.sessions.create({ expiresAt: new Date(Date.now() + 3_600_000) });
    const remote = await SandboxInstance.fromSession(session);
    await remote.fs.mkdir("/tmp/watched");
    const events: string[] = [];
    const handle = remote.fs.watch("/tmp/watched", (e) => {
      events.push(`${e.op}:${e.name}`);
    });
    await new Promise((r) => setTimeout(r, 300));
    await owner.fs.write("/tmp/watched/new.txt", "x");
    for (let i = 0; i < 50 && !events.some((e) => e === "CREATE:new.txt"); i++) await new Promise((r) => setTimeout(r, 100));
    handle.close();
    expect(events).toContain("CREATE:new.txt");

    const lines: string[] = [];
    await remote.process.exec({ name: "streamer", command: "for i in 1 2 3; do echo line$i; sleep 0.1; done" });
    const stream = remote.process.streamLogs("streamer", { onLog: (l) => lines.push(l) });
    await remote.process.wait("streamer", { maxWait: 10_000, interval: 100 });
    await new Promise((r) => setTimeout(r, 300));
    stream.close();
    expect(lines.join("")).toContain("line3");
  });

  it("serves a browser page of another origin: preflights answered without credentials, errors readable", async () => {
    const session = await owner.sessions.create({ expiresAt: new Date(Date.now() + 3_600_000) });
    const origin = "https://app.example";
    const preflight = { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-blaxel-preview-token" };
    const pre = await httpRequest(`${session.url}/process`, { method: "OPTIONS", headers: preflight });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe(origin);
    expect(pre.headers["access-control-allow-methods"]).toContain("POST");
    expect(pre.headers["access-control-allow-headers"]).toContain("x-blaxel-preview-token");
    expect(pre.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(Number(pre.headers["access-control-max-age"])).toBeGreaterThan(0);

    const run = await httpRequest(`${session.url}/process`, {
      method: "POST",
      headers: { origin, "content-type": "application/json", "x-blaxel-preview-token": session.token },
      body: JSON.stringify({ command: "echo cors-ok", waitForCompletion: true }),
    });
    expect(run.status).toBe(200);
    expect(run.headers["access-control-allow-origin"]).toBe("*");
    expect(JSON.parse(run.body)).toMatchObject({ stdout: "cors-ok\n" });

    for (const headers of [{ origin }, { origin, "x-blaxel-preview-token": "hpt_wrong" }] as Record<string, string>[]) {
      const denied = await httpRequest(`${session.url}/process`, { headers });
      expect(denied.status).toBe(401);
      expect(denied.headers["access-control-allow-origin"]).toBe("*");
      expect(JSON.parse(denied.body)).toMatchObject({ status: 401 });
    }
    const gone = await httpRequest(`${h.url}/preview/nosuchsession/process`, { headers: { origin } });
    expect(gone.status).toBe(404);
    expect(gone.headers["access-control-allow-origin"]).toBe("*");

    // The sandbox URL itself (API key in a header) is the same sandbox API.
    const base = `${h.url}/run/default/sandboxes/session-box`;
    const preKey = await httpRequest(`${base}/process`, { method: "OPTIONS", headers: { ...preflight, "access-control-request-headers": "authorization" } });
    expect(preKey.status).toBe(204);
    expect(preKey.headers["access-control-allow-headers"]).toBe("authorization");
    const noKey = await httpRequest(`${base}/process`, { headers: { origin } });
    expect(noKey.status).toBe(401);
    expect(noKey.headers["access-control-allow-origin"]).toBe("*");
    // Without an Origin nothing changes.
    expect((await httpRequest(`${base}/process`)).headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("opens neither the control plane nor another sandbox", async () => {
    const session = await owner.sessions.create({ expiresAt: new Date(Date.now() + 3_600_000) });
    const asToken = { "x-blaxel-preview-token": session.token };
    expect((await fetch(`${h.url}/v0/sandboxes`, { headers: { ...asToken, "x-blaxel-workspace": "default" } })).status).toBe(401);
    expect((await fetch(`${h.url}/v0/sandboxes`, { headers: { authorization: `Bearer ${session.token}`, "x-blaxel-workspace": "default" } })).status).toBe(401);
    expect((await fetch(`${h.url}/run/default/sandboxes/other-box/process`, { headers: asToken })).status).toBe(401);
    const other = await (await SandboxInstance.get("other-box")).sessions.create({ expiresAt: new Date(Date.now() + 3_600_000) });
    const crossed = await fetch(`${other.url}/process`, { headers: asToken });
    expect(crossed.status).toBe(401);
    expect((await fetch(`${other.url}/process`, { headers: { "x-blaxel-preview-token": other.token } })).status).toBe(200);
  });

  it("lists, recreates when expired and deletes sessions", async () => {
    const before = await owner.sessions.list();
    expect(before.length).toBeGreaterThanOrEqual(3);
    expect(before.every((s) => s.name.startsWith("session-") && s.token.startsWith("hpt_"))).toBe(true);
    const soon = await owner.sessions.create({ expiresAt: new Date(Date.now() + 1_000) });
    await new Promise((r) => setTimeout(r, 1_500));
    const expired = await fetch(`${soon.url}/process`, { headers: { "x-blaxel-preview-token": soon.token } });
    expect([401, 404]).toContain(expired.status);
    for (const s of await owner.sessions.list()) await owner.sessions.delete(s.name);
    expect(await owner.sessions.list()).toEqual([]);
    const fresh = await owner.sessions.createIfExpired({ expiresAt: new Date(Date.now() + 7_200_000) }, 60_000);
    const again = await owner.sessions.createIfExpired({ expiresAt: new Date(Date.now() + 7_200_000) }, 60_000);
    expect(again.url).toBe(fresh.url);
    expect((await api(h, "GET", "/v0/sandboxes/session-box/previews").then((r) => r.json()) as unknown[]).length).toBe(1);
  });
});
