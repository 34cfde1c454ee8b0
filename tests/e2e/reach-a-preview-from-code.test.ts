// A user's code on the machine opens a preview URL Hangar returned: Node's fetch, curl and a
// WebSocket client reach it with no DNS setup (each app preview has a port of its own on the
// server's host), absolute paths of the app work, the port survives a server crash, and deleting
// a preview (or its sandbox) frees its port for the next one.

import { execFileSync } from "node:child_process";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebApp } from "./fixtures.js";
import { type RunningHangar, api, claimInstance, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let sandbox: import("@blaxel/core").SandboxInstance;
/** The three preview ports this server may hand out. */
let range: number[];

beforeAll(async () => {
  const instance = claimInstance();
  const first = Number(instance.env.HANGAR_PREVIEW_PORTS!.split("-")[0]);
  range = [first, first + 1, first + 2];
  h = await startHangar({ instance, env: { HANGAR_PREVIEW_PORTS: `${first}-${first + 2}` } });
  useSdkAgainst(h);
  const { SandboxInstance } = await import("@blaxel/core");
  sandbox = await SandboxInstance.create({ name: "coded", memory: 512, ports: [{ target: 3000 }, { target: 4000 }] });
  await startWebApp(sandbox, 3000);
  await startWebApp(sandbox, 4000);
});

afterAll(async () => {
  await h?.dispose();
});

const curl = (url: string, ...args: string[]) => execFileSync("curl", ["-sS", "--max-time", "10", ...args, url], { encoding: "utf8" });

describe("a preview URL from code", () => {
  let url: string;

  it("is a port of the server's host that Node's fetch and curl open as they are, absolute paths included", async () => {
    const p = await sandbox.previews.create({ metadata: { name: "site" }, spec: { port: 3000, public: true } });
    url = p.spec.url!;
    const port = Number(new URL(url).port);
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(range).toContain(port);

    const page = await fetch(url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("Hello from the sandbox on port 3000");
    // the page loads its script by an absolute path: the app is at the root of its own origin
    const src = /<script src="([^"]+)"/.exec(html)![1]!;
    expect(src).toBe("/static/app.js");
    const script = await fetch(new URL(src, `${url}/`));
    expect(script.status).toBe(200);
    expect(await script.text()).toContain('dataset.abs = "ran"');

    expect(curl(`${url}/`)).toContain("Hello from the sandbox on port 3000");
    expect(curl(`${url}/static/app.js`)).toContain('dataset.abs = "ran"');
    // paths of Hangar's own mean nothing there: the app answers them
    expect(curl(`${url}/v0/sandboxes`, "-o", "/dev/null", "-w", "%{http_code}")).toBe("404");
    const seen = curl(`${url}/headers`);
    expect(seen).toContain(`"host":"127.0.0.1:${port}"`);
    // on the front door's fast path: bytes spliced to the app, no proxy headers added
    expect(seen).not.toContain("x-forwarded-for");
  });

  it("keeps a private preview closed without its token, opens it with one, and scopes its cookie to the port", async () => {
    const p = await sandbox.previews.create({ metadata: { name: "private" }, spec: { port: 4000, public: false } });
    const u = p.spec.url!;
    const port = new URL(u).port;
    expect((await fetch(`${u}/count`)).status).toBe(401);
    const t = await p.tokens.create(new Date(Date.now() + 600_000));
    expect((await fetch(`${u}/count`, { headers: { "x-blaxel-preview-token": t.value } })).status).toBe(200);
    const opened = await fetch(`${u}/?bl_preview_token=${encodeURIComponent(t.value)}`);
    expect(await opened.text()).toContain("port 4000");
    // browsers share cookies across the ports of a host: each preview port has its own cookie
    const cookie = opened.headers.get("set-cookie")!;
    expect(cookie).toMatch(new RegExp(`^hangar_preview_token_${port}=[^;]+; Path=/; HttpOnly; SameSite=Lax$`));
    const jar = cookie.split(";")[0]!;
    const asset = await fetch(`${u}/headers`, { headers: { cookie: `${jar}; theme=dark` } });
    expect(asset.status).toBe(200);
    expect(((await asset.json()) as { headers: Record<string, string> }).headers.cookie).toBe("theme=dark");
    // another preview's app never sees the cookie, nor is opened by it
    const other = await fetch(`${url}/headers`, { headers: { cookie: `${jar}; theme=dark` } });
    expect(((await other.json()) as { headers: Record<string, string> }).headers.cookie).toBe("theme=dark");
    expect((await fetch(`${u}/count`, { headers: { cookie: `hangar_preview_token_${port}=hpt_wrong` } })).status).toBe(401);
  });

  it("passes WebSockets through the preview's port", async () => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws`);
    await new Promise((r, j) => ws.once("open", r).once("error", j));
    const echo = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
    ws.send("hello");
    expect(await echo).toMatch(/^echo:hello:\d+$/);
    ws.close();
  });

  it("keeps its port across a crash of the server, and answers there again", async () => {
    await h.kill9();
    h = await h.restart();
    useSdkAgainst(h);
    const { SandboxInstance } = await import("@blaxel/core");
    sandbox = await SandboxInstance.get("coded");
    expect((await sandbox.previews.get("site")).spec.url).toBe(url);
    const res = await fetch(`${url}/static/app.js`);
    expect(res.status).toBe(200);
    expect(curl(`${url}/`)).toContain("port 3000");
  });

  it("refuses a preview when the range is used up, with a clear code, and frees a port when a preview is deleted", async () => {
    // two of the three ports are taken (site, private)
    const third = await sandbox.previews.create({ metadata: { name: "third" }, spec: { port: 3000, public: true } });
    const thirdUrl = third.spec.url!;
    expect((await fetch(thirdUrl)).status).toBe(200);
    const full = await api(h, "POST", "/v0/sandboxes/coded/previews", { metadata: { name: "fourth" }, spec: { port: 3000, public: true } });
    expect(full.status).toBe(409);
    expect(await full.json()).toMatchObject({ type: "urn:hangar:problem:preview_ports_exhausted", code: 409 });
    expect((await sandbox.previews.list()).map((p) => p.name).sort()).toEqual(["private", "site", "third"]);
    // sessions (the sandbox API, port 443) use a path URL and need no port
    const session = await sandbox.sessions.create();
    expect(session.url).toMatch(new RegExp(`^${h.url}/preview/`));

    await sandbox.previews.delete("third");
    // the deleted preview's port no longer serves it
    const gone = await fetch(thirdUrl).then((r) => r.status, () => "refused");
    expect([404, "refused"]).toContain(gone);
    const fourth = await sandbox.previews.createIfNotExists({ metadata: { name: "fourth" }, spec: { port: 4000, public: true } });
    expect(fourth.spec.url).toBe(thirdUrl);
    expect(await (await fetch(fourth.spec.url!)).text()).toContain("port 4000");
    await sandbox.previews.delete("fourth");
  });

  it("frees a sandbox's preview ports with the sandbox", async () => {
    const { SandboxInstance } = await import("@blaxel/core");
    const tmp = await SandboxInstance.create({ name: "short-lived", memory: 256, ports: [{ target: 3000 }] });
    const p = await tmp.previews.create({ metadata: { name: "gone-soon" }, spec: { port: 3000, public: true } });
    await expect(sandbox.previews.create({ metadata: { name: "no-room" }, spec: { port: 3000, public: true } })).rejects.toMatchObject({ code: 409 });
    await SandboxInstance.delete("short-lived");
    for (let i = 0; i < 100 && (await api(h, "GET", "/v0/sandboxes/short-lived")).status !== 404; i++) await new Promise((r) => setTimeout(r, 100));
    const again = await sandbox.previews.create({ metadata: { name: "room-again" }, spec: { port: 3000, public: true } });
    expect(again.spec.url).toBe(p.spec.url);
    expect((await fetch(again.spec.url!)).status).toBe(200);
  });
});
