// An operator serves sandboxes under their own host names (HANGAR_SANDBOX_DOMAIN): each sandbox's
// metadata.url is http://sbx-<name>-<workspace code>.<domain>, and requests with that Host reach
// its sandbox API (and its ports, and its terminal) with an API key of its workspace, and nothing
// without one.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, httpRequest, startHangar } from "./harness.js";

let h: RunningHangar;
let url: string;
let keyB: string;

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_SANDBOX_DOMAIN: "sandbox.localhost" } });
  expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "hostbox" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
  for (let i = 0; i < 300; i++) {
    const s = (await (await api(h, "GET", "/v0/sandboxes/hostbox")).json()) as { status: string; metadata: { url: string } };
    url = s.metadata.url;
    if (s.status === "DEPLOYED") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect((await api(h, "POST", "/v0/workspaces", { name: "team-b" })).status).toBe(200);
  const res = await api(h, "POST", "/v0/api-keys", { name: "b-key", workspaces: ["team-b"] }, { "x-blaxel-workspace": "team-b" });
  keyB = ((await res.json()) as { apiKey: string }).apiKey;
});

afterAll(async () => {
  await h?.dispose();
});

describe("host-based sandbox URLs", () => {
  it("gives each sandbox a metadata.url under the sandbox domain, named after it and its workspace", async () => {
    const ws = (await (await api(h, "GET", "/v0/workspaces/default")).json()) as { id: string };
    const code = ws.id.slice(-8).toLowerCase();
    expect(url).toBe(`http://sbx-hostbox-${code}.sandbox.localhost:${h.port}`);
  });

  it("serves the sandbox API on that host with an API key", async () => {
    const run = await httpRequest(`${url}/process`, {
      method: "POST",
      headers: { ...auth(h.apiKey), "content-type": "application/json" },
      body: JSON.stringify({ command: "echo via-host $(hostname)", waitForCompletion: true }),
    });
    expect(run.status, run.body).toBe(200);
    expect(JSON.parse(run.body)).toMatchObject({ status: "completed", exitCode: 0, stdout: "via-host hostbox\n" });
    // x-blaxel-authorization works as well, as the SDK sends it.
    const listed = await httpRequest(`${url}/process`, { headers: { "x-blaxel-authorization": `Bearer ${h.apiKey}` } });
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toEqual(expect.arrayContaining([expect.objectContaining({ command: "echo via-host $(hostname)" })]));
    // The path-based URL keeps working.
    expect((await fetch(`${h.url}/run/default/sandboxes/hostbox/process`, { headers: auth(h.apiKey) })).status).toBe(200);
  });

  it("is 401 without a key or with a wrong one, 403 with a key of another workspace, 404 for an unknown sandbox", async () => {
    expect((await httpRequest(`${url}/process`)).status).toBe(401);
    expect((await httpRequest(`${url}/process`, { headers: auth("hgr_wrong") })).status).toBe(401);
    expect((await httpRequest(`${url}/process`, { headers: auth(keyB) })).status).toBe(403);
    const unknown = url.replace("sbx-hostbox-", "sbx-nobox-");
    expect((await httpRequest(`${unknown}/process`, { headers: auth(h.apiKey) })).status).toBe(404);
  });

  it("proxies /port/{n} on that host", async () => {
    const started = await httpRequest(`${url}/process`, {
      method: "POST",
      headers: { ...auth(h.apiKey), "content-type": "application/json" },
      body: JSON.stringify({ name: "app", command: `node -e "require('http').createServer((q, r) => r.end('app saw ' + q.url)).listen(3000)"`, waitForPorts: [3000] }),
    });
    expect(started.status, started.body).toBe(200);
    const res = await httpRequest(`${url}/port/3000/hello?x=1`, { headers: auth(h.apiKey) });
    expect(res.status).toBe(200);
    expect(res.body).toBe("app saw /hello?x=1");
    expect((await httpRequest(`${url}/port/3000/hello`)).status).toBe(401);
  });

  it("opens the terminal on that host with ?token= (bl connect sandbox)", async () => {
    const u = new URL(url);
    const ws = new WebSocket(`ws://127.0.0.1:${u.port}/terminal/ws?token=${encodeURIComponent(h.apiKey)}&cols=80&rows=24`, { headers: { host: u.host } });
    await new Promise((r, j) => ws.once("open", r).once("error", j));
    let out = "";
    const seen = new Promise<void>((r) =>
      ws.on("message", (raw) => {
        const m = JSON.parse(String(raw)) as { type: string; data?: string };
        if (m.type === "output") out += m.data ?? "";
        if (/host-term-42/.test(out)) r();
      }),
    );
    ws.send(JSON.stringify({ type: "input", data: "echo host-term-$((6*7))\r" }));
    await seen;
    ws.close();
    const refused = new WebSocket(`ws://127.0.0.1:${u.port}/terminal/ws?token=hgr_wrong`, { headers: { host: u.host } });
    const status = await new Promise<number | undefined>((r) => {
      refused.once("unexpected-response", (_req, res) => r(res.statusCode));
      refused.once("open", () => r(101));
      refused.once("error", () => r(undefined));
    });
    expect(status).toBe(401);
  });
});
