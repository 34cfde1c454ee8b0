import { type TestStore, openTestStore } from "@hangar/store/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConnectionTokens } from "./connection-tokens.js";
import { FunctionConnections } from "./function-connections.js";
import { GatewayService } from "./gateway-service.js";
import { parsePlacement } from "./policies.js";
import { connectionView } from "./routes.js";
import { OAuthStandIn } from "./testing/oauth-stand-in.js";

let t: TestStore;
let service: GatewayService;
let auth: OAuthStandIn;
let tokens: ConnectionTokens;

const SECRET = { CLIENT_ID: "client-1.apps.example", CLIENT_SECRET: "cs-very-secret", REFRESH_TOKEN: "1//refresh-abc" };

beforeEach(async () => {
  t = await openTestStore();
  service = new GatewayService({ store: t.store, secrets: t.secrets, placement: parsePlacement("", "") });
  auth = await OAuthStandIn.start({ clientId: SECRET.CLIENT_ID, clientSecret: SECRET.CLIENT_SECRET, refreshTokens: [SECRET.REFRESH_TOKEN], expiresIn: 3 });
  tokens = new ConnectionTokens({ store: t.store, secrets: t.secrets, overrides: { gmail: { tokenUrl: auth.url, apiUrl: "https://gmail.example.test" } }, retryMs: 200 });
});
afterEach(async () => {
  await auth.close();
  await t.close();
});

const gmail = (secret: Record<string, string> = SECRET) => ({ metadata: { name: "gmail-google-oauth" }, spec: { integration: "gmail", secret } });

describe("OAuth integration connections", () => {
  it("seals the OAuth secrets, masks them, and wants all three", async () => {
    const rec = await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    const shown = JSON.stringify(connectionView(rec, t.workspace));
    for (const v of Object.values(SECRET)) {
      expect(JSON.stringify(rec.spec)).not.toContain(v);
      expect(shown).not.toContain(v);
    }
    expect((connectionView(rec, t.workspace).spec as { secret: unknown }).secret).toEqual({ CLIENT_ID: "", CLIENT_SECRET: "", REFRESH_TOKEN: "" });
    await expect(service.applyConnection(t.workspace, { metadata: { name: "half" }, spec: { integration: "gmail", secret: { CLIENT_ID: "x" } } }, { mustCreate: true })).rejects.toThrow(/CLIENT_SECRET/);
  });

  it("exchanges the refresh token (form-encoded), keeps the access token sealed until near expiry, then refreshes it", async () => {
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    const a = await tokens.token(t.workspace.id, "gmail-google-oauth");
    expect(auth.valid(a.accessToken)).toBe(true);
    expect(auth.requests[0]).toEqual({ grant_type: "refresh_token", refresh_token: SECRET.REFRESH_TOKEN, client_id: SECRET.CLIENT_ID, client_secret: SECRET.CLIENT_SECRET });
    expect(auth.contentTypes[0]).toBe("application/x-www-form-urlencoded");
    // cached: no second request, and sealed in the store
    expect((await tokens.token(t.workspace.id, "gmail-google-oauth")).accessToken).toBe(a.accessToken);
    expect(auth.requests).toHaveLength(1);
    const row = await t.store.connectionTokens.get(t.workspace.id, "gmail-google-oauth");
    expect(row?.accessToken).not.toContain(a.accessToken);
    // a third of its life before expiry it is refreshed
    await new Promise((r) => setTimeout(r, 2100));
    const b = await tokens.token(t.workspace.id, "gmail-google-oauth");
    expect(b.accessToken).not.toBe(a.accessToken);
    expect(auth.valid(b.accessToken)).toBe(true);
  });

  it("refreshes once when many ask at once (also from another process's ConnectionTokens)", async () => {
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    const other = new ConnectionTokens({ store: t.store, secrets: t.secrets, overrides: { gmail: { tokenUrl: auth.url } } });
    const got = await Promise.all([...Array(5)].flatMap(() => [tokens.token(t.workspace.id, "gmail-google-oauth"), other.token(t.workspace.id, "gmail-google-oauth")]));
    expect(new Set(got.map((g) => g.accessToken)).size).toBe(1);
    expect(auth.requests).toHaveLength(1);
  });

  it("a refresher that died holding the lease (kill -9) delays the next one only until its lease ends", async () => {
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    const now = Date.now();
    expect(await t.store.connectionTokens.claim(t.workspace.id, "gmail-google-oauth", "dead-server", new Date(now).toISOString(), new Date(now + 400).toISOString())).toBe(true);
    const got = await tokens.token(t.workspace.id, "gmail-google-oauth");
    expect(Date.now() - now).toBeGreaterThanOrEqual(350);
    expect(auth.valid(got.accessToken)).toBe(true);
    expect(auth.requests).toHaveLength(1);
  });

  it("a revoked refresh token fails clearly and stays failed until the connection changes", async () => {
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    auth.revoke(SECRET.REFRESH_TOKEN);
    await expect(tokens.token(t.workspace.id, "gmail-google-oauth")).rejects.toThrow(/refused its credentials \(invalid_grant: Token has been expired or revoked\.\)/);
    await expect(tokens.token(t.workspace.id, "gmail-google-oauth")).rejects.toMatchObject({ code: "connection_failed" });
    expect(auth.requests).toHaveLength(1);
    expect(await tokens.problem(t.workspace.id, "gmail-google-oauth")).toMatch(/invalid_grant/);
    const err = String(await tokens.token(t.workspace.id, "gmail-google-oauth").catch((e: Error) => e.message));
    for (const v of Object.values(SECRET)) expect(err).not.toContain(v);
    // a new refresh token (PUT; the others kept): works again
    const fresh = "1//refresh-new";
    await auth.close();
    auth = await OAuthStandIn.start({ clientId: SECRET.CLIENT_ID, clientSecret: SECRET.CLIENT_SECRET, refreshTokens: [fresh] });
    tokens = new ConnectionTokens({ store: t.store, secrets: t.secrets, overrides: { gmail: { tokenUrl: auth.url } } });
    await service.applyConnection(t.workspace, { metadata: { name: "gmail-google-oauth" }, spec: { integration: "gmail", secret: { REFRESH_TOKEN: fresh } } }, { name: "gmail-google-oauth" });
    expect(auth.valid((await tokens.token(t.workspace.id, "gmail-google-oauth")).accessToken)).toBe(true);
    expect(await tokens.problem(t.workspace.id, "gmail-google-oauth")).toBeNull();
  });

  it("keeps a rotated refresh token (sealed) and uses it for the next refresh, until the connection changes", async () => {
    await auth.close();
    auth = await OAuthStandIn.start({ clientId: SECRET.CLIENT_ID, clientSecret: SECRET.CLIENT_SECRET, refreshTokens: [SECRET.REFRESH_TOKEN, "1//reauthorized"], expiresIn: 3, rotate: true });
    tokens = new ConnectionTokens({ store: t.store, secrets: t.secrets, overrides: { gmail: { tokenUrl: auth.url } } });
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    const a = await tokens.token(t.workspace.id, "gmail-google-oauth");
    expect(auth.valid(a.accessToken)).toBe(true);
    const row = (await t.store.connectionTokens.get(t.workspace.id, "gmail-google-oauth"))!;
    expect(row.refreshToken).toBeTruthy();
    expect(row.refreshToken).not.toContain("1//rotated-");
    // the provider revoked the first refresh token when it rotated: the next refresh must use the new one
    await new Promise((r) => setTimeout(r, 2100));
    const b = await tokens.token(t.workspace.id, "gmail-google-oauth");
    expect(auth.valid(b.accessToken)).toBe(true);
    expect(auth.requests.map((r) => r.refresh_token)).toEqual([SECRET.REFRESH_TOKEN, expect.stringMatching(/^1\/\/rotated-/)]);
    expect(await tokens.problem(t.workspace.id, "gmail-google-oauth")).toBeNull();
    // the user authorizes again: the connection's new refresh token wins over the rotated one
    await service.applyConnection(t.workspace, { metadata: { name: "gmail-google-oauth" }, spec: { integration: "gmail", secret: { REFRESH_TOKEN: "1//reauthorized" } } }, { name: "gmail-google-oauth" });
    expect(auth.valid((await tokens.token(t.workspace.id, "gmail-google-oauth")).accessToken)).toBe(true);
    expect(auth.requests.at(-1)!.refresh_token).toBe("1//reauthorized");
  });

  it("functions: names checked in the workspace; replicas get a bearer rule for the API host, never the refresh token", async () => {
    const fc = new FunctionConnections({ store: t.store, tokens });
    await expect(fc.check(t.workspace.id, ["nope"])).rejects.toMatchObject({ code: "validation_failed", message: expect.stringContaining("'nope' not found") });
    await service.applyConnection(t.workspace, { metadata: { name: "oa" }, spec: { integration: "openai", secret: { apiKey: "sk-1" } } }, { mustCreate: true });
    await expect(fc.check(t.workspace.id, ["oa"])).rejects.toThrow(/serves models, not functions/);
    await service.applyConnection(t.workspace, gmail(), { mustCreate: true });
    expect(await fc.check(t.workspace.id, ["gmail-google-oauth"])).toEqual({ builtin: "gmail" });
    const access = await fc.access(t.workspace.id, ["gmail-google-oauth"]);
    expect(access.problem).toBeNull();
    expect(access.envs).toEqual({ GMAIL_API_URL: "https://gmail.example.test" });
    const rule = (access.network as { proxy: { routing: Array<{ destinations: string[]; headers: Record<string, string>; secrets: Record<string, string> }> } }).proxy.routing[0]!;
    expect(rule.destinations).toEqual(["gmail.example.test"]);
    expect(rule.headers).toEqual({ Authorization: "Bearer {{SECRET:connection-0}}" });
    expect(auth.valid(rule.secrets["connection-0"]!)).toBe(true);
    const all = JSON.stringify(access);
    expect(all).not.toContain(SECRET.REFRESH_TOKEN);
    expect(all).not.toContain(SECRET.CLIENT_SECRET);
    // a model cannot name it; it cannot be deleted while... (no function here): deleting forgets the token
    await service.delete(t.workspace, "connections", "gmail-google-oauth");
    expect(await t.store.connectionTokens.get(t.workspace.id, "gmail-google-oauth")).toBeNull();
  });
});
