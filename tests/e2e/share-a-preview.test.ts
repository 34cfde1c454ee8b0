// A user publishes a port of a sandbox on a preview URL: public, or private behind tokens, with
// CORS, custom domains, streaming and WebSockets passing through. Both ways of serving previews:
// a host port per preview (the default) and host names under HANGAR_PREVIEW_DOMAIN.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebApp } from "./fixtures.js";
import { type RunningHangar, api, httpRequest, startHangar, useSdkAgainst } from "./harness.js";

describe.each(["port", "domain"] as const)("previews served by %s", (mode) => {
  let h: RunningHangar;
  let sandbox: import("@blaxel/core").SandboxInstance;
  /** The preview cookie of a preview URL. */
  const cookieName = (url: string) => (mode === "port" ? `hangar_preview_token_${new URL(url).port}` : "hangar_preview_token");
  /** The label of a preview's path alias (/preview/{label}), as its host name shows it (domain mode; port mode: prefixUrl's only). */
  const labelOf = (url: string) => new URL(url).hostname.split(".")[0]!;

  beforeAll(async () => {
    h = await startHangar(mode === "domain" ? { env: { HANGAR_PREVIEW_DOMAIN: "preview.localhost" } } : {});
    useSdkAgainst(h);
    const { SandboxInstance, initialize } = await import("@blaxel/core");
    // the SDK, loaded once for the file, is pointed at each mode's server in turn
    initialize({ workspace: "default", apiKey: h.apiKey });
    sandbox = await SandboxInstance.create({ name: "web", memory: 512, ports: [{ target: 3000 }, { target: 4000 }] });
    await startWebApp(sandbox, 3000);
    await startWebApp(sandbox, 4000);
  });

  afterAll(async () => {
    await h?.dispose();
  });

  describe("public previews", () => {
    it("serves the port on a URL of its own (a host port, or a host name under the domain; there also on a path alias)", async () => {
      const p = await sandbox.previews.create({ metadata: { name: "site" }, spec: { port: 3000, public: true } });
      const url = p.spec.url!;
      expect(url).toMatch(mode === "port" ? /^http:\/\/127\.0\.0\.1:\d+$/ : new RegExp(`^http://[a-z0-9]+\\.preview\\.localhost:${h.port}$`));
      const page = await httpRequest(`${url}/`);
      expect(page.status).toBe(200);
      expect(page.body).toContain("Hello from the sandbox on port 3000");
      if (mode === "domain") {
        const viaPath = await fetch(`${h.url}/preview/${labelOf(url)}/count`);
        expect(viaPath.status).toBe(200);
      }
    });

    it("publishes several ports side by side", async () => {
      const p = await sandbox.previews.create({ metadata: { name: "second" }, spec: { port: 4000, public: true } });
      expect((await httpRequest(`${p.spec.url}/`)).body).toContain("port 4000");
    });

    it("refuses an undeclared port and port 80", async () => {
      await expect(sandbox.previews.create({ metadata: { name: "nope" }, spec: { port: 5000, public: true } })).rejects.toMatchObject({ code: 400 });
      await expect(sandbox.previews.create({ metadata: { name: "nope" }, spec: { port: 80, public: true } })).rejects.toMatchObject({ code: 400 });
    });

    it("streams responses as they are written", async () => {
      const p = await sandbox.previews.get("site");
      const res = await httpRequest(`${p.spec.url}/stream`);
      expect(res.body).toBe("chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    });

    it("passes WebSockets through, pings included", async () => {
      const p = await sandbox.previews.get("site");
      const u = new URL(p.spec.url!);
      const ws = new WebSocket(`ws://127.0.0.1:${u.port}/ws`, { headers: { host: u.host } });
      await new Promise((r, j) => ws.once("open", r).once("error", j));
      const pong = new Promise((r) => ws.once("pong", r));
      ws.ping("are you there");
      await pong;
      const echo = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
      ws.send("hello");
      expect(await echo).toMatch(/^echo:hello:\d+$/);
      ws.close();
    });
  });

  describe("private previews and tokens", () => {
    it("needs a valid token, in the header or the query string", async () => {
      const p = await sandbox.previews.create({ metadata: { name: "private" }, spec: { port: 3000, public: false } });
      const url = p.spec.url!;
      const none = await httpRequest(`${url}/count`);
      expect(none.status).toBe(401);
      expect(JSON.parse(none.body)).toMatchObject({ status: 401, code: 401 });
      expect((await httpRequest(`${url}/count`, { headers: { "x-blaxel-preview-token": "hpt_wrong" } })).status).toBe(401);

      const tokens = await Promise.all(Array.from({ length: 15 }, () => p.tokens.create(new Date(Date.now() + 600_000))));
      expect(new Set(tokens.map((t) => t.value)).size).toBe(15);
      expect(await p.tokens.list()).toHaveLength(15);
      for (const t of tokens) {
        expect((await httpRequest(`${url}/count`, { headers: { "x-blaxel-preview-token": t.value } })).status).toBe(200);
      }
      const viaQuery = await httpRequest(`${url}/headers?bl_preview_token=${encodeURIComponent(tokens[0]!.value)}&x=1`);
      expect(viaQuery.status).toBe(200);
      const seen = JSON.parse(viaQuery.body) as { url: string; headers: Record<string, string> };
      // The token never reaches the app.
      expect(seen.url).toBe("/headers?x=1");
      expect(JSON.stringify(seen.headers)).not.toContain(tokens[0]!.value);
    });

    it("keeps a page opened with ?bl_preview_token= open for its links and assets, by cookie", async () => {
      const p = await sandbox.previews.get("private");
      const t = await p.tokens.create(new Date(Date.now() + 600_000));
      const page = await httpRequest(`${p.spec.url}/?bl_preview_token=${encodeURIComponent(t.value)}`);
      expect(page.status).toBe(200);
      const cookie = [page.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith(`${cookieName(p.spec.url!)}=`));
      expect(cookie).toMatch(new RegExp(`^${cookieName(p.spec.url!)}=[^;]+; Path=/; HttpOnly; SameSite=Lax$`));
      const jar = cookie!.split(";")[0]!;

      // An asset of the page carries only the cookie; the app sees its own cookies, never the token.
      const asset = await httpRequest(`${p.spec.url}/headers`, { headers: { cookie: `theme=dark; ${jar}; lang=en` } });
      expect(asset.status).toBe(200);
      const seen = JSON.parse(asset.body) as { headers: Record<string, string> };
      expect(seen.headers.cookie).toBe("theme=dark; lang=en");
      expect(JSON.stringify(seen.headers)).not.toContain(t.value);
      const alone = await httpRequest(`${p.spec.url}/headers`, { headers: { cookie: jar } });
      expect(alone.status).toBe(200);
      expect((JSON.parse(alone.body) as { headers: Record<string, string> }).headers.cookie).toBeUndefined();

      // A wrong cookie, the cookie on the shared-origin path alias, or a header token never sets one.
      expect((await httpRequest(`${p.spec.url}/count`, { headers: { cookie: `${cookieName(p.spec.url!)}=hpt_wrong` } })).status).toBe(401);
      if (mode === "domain") expect((await httpRequest(`${h.url}/preview/${labelOf(p.spec.url!)}/count`, { headers: { cookie: jar } })).status).toBe(401);
      const viaHeader = await httpRequest(`${p.spec.url}/count`, { headers: { "x-blaxel-preview-token": t.value } });
      expect(viaHeader.headers["set-cookie"]).toBeUndefined();

      // Deleting the token closes the cookie too.
      const name = (await api(h, "GET", "/v0/sandboxes/web/previews/private/tokens").then((r) => r.json()) as { metadata: { name: string }; spec: { token: string } }[]).find((x) => x.spec.token === t.value)!.metadata.name;
      await p.tokens.delete(name);
      expect((await httpRequest(`${p.spec.url}/count`, { headers: { cookie: jar } })).status).toBe(401);
    });

    it("refuses expired and deleted tokens, and tokens of another preview", async () => {
      const p = await sandbox.previews.get("private");
      const short = await p.tokens.create(new Date(Date.now() + 1_500));
      expect((await httpRequest(`${p.spec.url}/count`, { headers: { "x-blaxel-preview-token": short.value } })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2_000));
      expect((await httpRequest(`${p.spec.url}/count`, { headers: { "x-blaxel-preview-token": short.value } })).status).toBe(401);
      const listed = (await p.tokens.list()).find((t) => t.value === short.value)!;
      expect(listed.expired).toBe(true);

      const other = await sandbox.previews.create({ metadata: { name: "other-private" }, spec: { port: 4000, public: false } });
      const otherToken = await other.tokens.create(new Date(Date.now() + 600_000));
      expect((await httpRequest(`${p.spec.url}/count`, { headers: { "x-blaxel-preview-token": otherToken.value } })).status).toBe(401);
      expect((await httpRequest(`${other.spec.url}/count`, { headers: { "x-blaxel-preview-token": otherToken.value } })).status).toBe(200);
      const tokenName = (await api(h, "GET", "/v0/sandboxes/web/previews/other-private/tokens").then((r) => r.json()) as { metadata: { name: string } }[])[0]!.metadata.name;
      await other.tokens.delete(tokenName);
      expect((await httpRequest(`${other.spec.url}/count`, { headers: { "x-blaxel-preview-token": otherToken.value } })).status).toBe(401);
    });
  });

  describe("headers, CORS, prefixes and custom domains", () => {
    it("adds request headers, sets response headers and answers CORS preflights", async () => {
      const cors = {
        "Access-Control-Allow-Origin": "https://app.example",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, X-Blaxel-Preview-Token",
        "Access-Control-Max-Age": "86400",
      };
      const p = await sandbox.previews.create({
        metadata: { name: "cors" },
        spec: { port: 3000, public: false, requestHeaders: { "X-From-Edge": "yes" }, responseHeaders: cors },
      });
      const t = await p.tokens.create(new Date(Date.now() + 600_000));
      const pre = await httpRequest(`${p.spec.url}/headers`, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "GET", "access-control-request-headers": "x-blaxel-preview-token" } });
      expect(pre.status).toBe(204);
      expect(pre.headers["access-control-allow-origin"]).toBe("https://app.example");
      expect(pre.headers["access-control-allow-headers"]).toContain("X-Blaxel-Preview-Token");
      const res = await httpRequest(`${p.spec.url}/headers`, { headers: { origin: "https://app.example", "x-blaxel-preview-token": t.value, "x-from-edge": "client" } });
      expect(res.status).toBe(200);
      expect(res.headers["access-control-allow-origin"]).toBe("https://app.example");
      expect(res.headers["x-app"]).toBe("yes");
      const seen = JSON.parse(res.body) as { headers: Record<string, string> };
      expect(seen.headers["x-from-edge"]).toBe("client");
      expect(seen.headers["x-blaxel-preview-token"]).toBeUndefined();
      // Refusals carry the preview's CORS headers, so the page can read them.
      const denied = await httpRequest(`${p.spec.url}/headers`, { headers: { origin: "https://app.example" } });
      expect(denied.status).toBe(401);
      expect(denied.headers["access-control-allow-origin"]).toBe("https://app.example");
    });

    it("answers preflights of a private preview without CORS headers, and lets a page read its refusals", async () => {
      const p = await sandbox.previews.create({ metadata: { name: "private-nocors" }, spec: { port: 3000, public: false } });
      const origin = "https://elsewhere.example";
      const pre = await httpRequest(`${p.spec.url}/headers`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "PUT", "access-control-request-headers": "x-blaxel-preview-token" } });
      expect(pre.status).toBe(204);
      expect(pre.headers["access-control-allow-origin"]).toBe(origin);
      expect(pre.headers["access-control-allow-methods"]).toContain("PUT");
      expect(pre.headers["access-control-allow-headers"]).toContain("x-blaxel-preview-token");
      const denied = await httpRequest(`${p.spec.url}/headers`, { headers: { origin } });
      expect(denied.status).toBe(401);
      expect(denied.headers["access-control-allow-origin"]).toBe("*");
      // With a token, the app's own response decides (this app sends no CORS headers).
      const t = await p.tokens.create(new Date(Date.now() + 600_000));
      const ok = await httpRequest(`${p.spec.url}/headers`, { headers: { origin, "x-blaxel-preview-token": t.value } });
      expect(ok.status).toBe(200);
      expect(ok.headers["access-control-allow-origin"]).toBeUndefined();
      // A public preview without CORS headers leaves preflights to its app.
      const site = await sandbox.previews.get("site");
      const appPre = await httpRequest(`${site.spec.url}/headers`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "PUT" } });
      expect(appPre.status).toBe(200);
      expect(appPre.headers["x-app"]).toBe("yes");
    });

    it("uses prefixUrl in the host (domain mode) or the path alias (port mode), and refuses a prefix that is taken", async () => {
      const p = await sandbox.previews.create({ metadata: { name: "prefixed" }, spec: { port: 3000, public: true, prefixUrl: "myapp" } });
      if (mode === "domain") expect(p.spec.url).toBe(`http://myapp-default.preview.localhost:${h.port}`);
      // the path alias, on the server's own origin (where a preview cookie never counts)
      expect((await httpRequest(`${h.url}/preview/myapp-default/`)).status).toBe(200);
      expect((await httpRequest(`${p.spec.url}/`)).status).toBe(200);
      await expect(sandbox.previews.create({ metadata: { name: "prefixed-2" }, spec: { port: 4000, public: true, prefixUrl: "myapp" } })).rejects.toMatchObject({ code: 409 });
    });

    it("routes a verified custom domain by Host header", async () => {
      const refused = await api(h, "POST", "/v0/sandboxes/web/previews", { metadata: { name: "custom" }, spec: { port: 3000, public: true, customDomain: "app.mycompany.test" } });
      expect(refused.status).toBe(400);
      expect((await api(h, "POST", "/v0/customdomains", { metadata: { name: "mycompany.test" } })).status).toBe(200);
      const unverified = await api(h, "POST", "/v0/customdomains/mycompany.test/verify");
      expect(unverified.status).toBe(422);
      const verified = (await (await api(h, "POST", "/v0/customdomains/mycompany.test/verify?force=true")).json()) as { status: string };
      expect(verified.status).toBe("VERIFIED");
      const created = await api(h, "POST", "/v0/sandboxes/web/previews", { metadata: { name: "custom" }, spec: { port: 3000, public: true, customDomain: "app.mycompany.test" } });
      expect(created.status).toBe(200);
      const res = await httpRequest(`${h.url}/`, { headers: { host: `app.mycompany.test:${h.port}` } });
      expect(res.status).toBe(200);
      expect(res.body).toContain("port 3000");
      // Other hosts still reach the control plane.
      expect((await httpRequest(`${h.url}/health`, { headers: { host: `other.example:${h.port}` } })).status).toBe(200);
    });
  });

  describe("lifecycle of previews", () => {
    it("lists, updates, deletes, and createIfNotExists returns the existing one", async () => {
      const names = (await sandbox.previews.list()).map((p) => p.name);
      expect(names).toEqual(expect.arrayContaining(["site", "second", "private", "cors"]));
      const same = await sandbox.previews.createIfNotExists({ metadata: { name: "site" }, spec: { port: 4000, public: false } });
      expect(same.spec.port).toBe(3000);
      const put = await api(h, "PUT", "/v0/sandboxes/web/previews/second", { spec: { public: false } });
      expect(((await put.json()) as { spec: { public: boolean } }).spec.public).toBe(false);
      const second = await sandbox.previews.get("second");
      expect((await httpRequest(`${second.spec.url}/`)).status).toBe(401);
      await sandbox.previews.delete("second");
      await expect(sandbox.previews.get("second")).rejects.toMatchObject({ code: 404 });
      expect(await httpRequest(`${second.spec.url}/`).then((r) => r.status, () => 404)).toBe(404);
    });

    it("removes a sandbox's previews with the sandbox", async () => {
      const { SandboxInstance } = await import("@blaxel/core");
      const tmp = await SandboxInstance.create({ name: "short-lived", memory: 256, ports: [{ target: 3000 }] });
      const p = await tmp.previews.create({ metadata: { name: "gone-soon" }, spec: { port: 3000, public: true } });
      await SandboxInstance.delete("short-lived");
      for (let i = 0; i < 100 && (await api(h, "GET", "/v0/sandboxes/short-lived")).status !== 404; i++) await new Promise((r) => setTimeout(r, 100));
      // a port no preview holds any more refuses connections (or, while it closes, answers 404)
      expect(await httpRequest(`${p.spec.url}/`).then((r) => r.status, () => 404)).toBe(404);
    });
  });
});
