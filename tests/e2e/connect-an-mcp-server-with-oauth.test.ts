// A backend connects its user's Gmail to an MCP server, as Blaxel's "OAuth flow for MCP
// integrations" guide does: after the OAuth dance it creates an integration connection holding
// CLIENT_ID, CLIENT_SECRET and REFRESH_TOKEN, then a function bound to it with runtime.type "mcp"
// and no image. Hangar runs its built-in Gmail MCP server, exchanges the refresh token for access
// tokens at the token endpoint (a stand-in authorization server on loopback), refreshes them
// before expiry, and the egress proxy adds the bearer to the server's calls to the Gmail API (a
// stand-in host of a fake internet): the server never holds the refresh token or client secret.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeInternet } from "@hangar/egress-proxy/testing";
import { OAuthStandIn } from "@hangar/gateway/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

const CLIENT_ID = "1234-hangar-test.apps.googleusercontent.com";
const CLIENT_SECRET = "GOCSPX-cl1ent-s3cret-v4lue";
const REFRESH_TOKEN = "1//0refresh-t0ken-of-the-user";
const SECRETS = [CLIENT_SECRET, REFRESH_TOKEN];

let h: RunningHangar;
let net: FakeInternet;
let auth: OAuthStandIn;
let dir: string;
let core: typeof import("@blaxel/core");

type Tool = { name: string; call: (args: unknown) => Promise<unknown> };

beforeAll(async () => {
  net = await FakeInternet.start({ name: "oauthe2e", subnet: "203.0.113.192/27", hosts: [{ names: ["gmail.googleapis.com"] }] });
  // tokens live 6 s: refreshed about 2 s before expiry
  auth = await OAuthStandIn.start({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshTokens: [REFRESH_TOKEN, "1//0second-user"], expiresIn: 6 });
  dir = mkdtempSync(join(tmpdir(), "hangar-e2e-oauth-"));
  writeFileSync(join(dir, "internet-ca.pem"), net.ca.certPem);
  h = await startHangar({
    env: {
      HANGAR_SANDBOX_DNS: net.dns,
      HANGAR_EGRESS_CA_FILES: join(dir, "internet-ca.pem"),
      // the token endpoint Hangar calls; the API host stays gmail.googleapis.com (the fake internet's)
      HANGAR_INTEGRATION_ENDPOINTS: JSON.stringify({ gmail: { tokenUrl: auth.url } }),
    },
  });
  useSdkAgainst(h);
  core = await import("@blaxel/core");
}, 300_000);

afterAll(async () => {
  await h?.dispose();
  await net?.stop();
  await auth?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function waitDeployed(name: string, timeoutMs = 200_000): Promise<{ status: string; events: { status: string; message: string }[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fn = (await (await api(h, "GET", `/v0/functions/${name}`)).json()) as { status: string; events: { status: string; message: string }[] };
    if (fn.status === "DEPLOYED") return fn;
    if (fn.status === "FAILED" || Date.now() > deadline) throw new Error(`function ${name}: ${fn.status} ${JSON.stringify(fn.events.at(-1))}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function gmailRequests() {
  return (await net.requests()).filter((r) => r.host === "gmail.googleapis.com");
}

async function sendEmail(fn: string, to: string, subject: string): Promise<string> {
  const tools = (await core.getTool(fn)) as Tool[];
  const send = tools.find((t) => t.name === "send_email")!;
  return JSON.stringify(await send.call({ to, subject, body: "Hello from Hangar" }));
}

describe("an MCP server acting with a user's OAuth connection", () => {
  it("runs the docs' flow with @blaxel/core: connection, function, send_email with a valid bearer, refreshed after expiry", { timeout: 300_000 }, async () => {
    // step 5 of the guide: the connection (secrets stored, never shown back)
    const created = await core.createIntegrationConnection({
      body: { metadata: { name: "gmail-google-oauth", displayName: "Gmail Google OAuth Connection" }, spec: { integration: "gmail", secret: { CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN } } } as never,
    });
    expect(created.error).toBeUndefined();
    const shown = JSON.stringify(created.data);
    expect(shown).toContain('"integration":"gmail"');
    for (const s of [...SECRETS, CLIENT_ID]) expect(shown).not.toContain(s);
    const got = JSON.stringify((await core.getIntegrationConnection({ path: { connectionName: "gmail-google-oauth" } })).data);
    for (const s of SECRETS) expect(got).not.toContain(s);

    // the MCP server bound to it
    const fn = await core.createFunction({
      body: { metadata: { name: "gmail-mcp-server", displayName: "Gmail MCP Server" }, spec: { type: "mcp", integrationConnections: ["gmail-google-oauth"], runtime: { type: "mcp" } } } as never,
    });
    expect(fn.error).toBeUndefined();
    const deployed = await waitDeployed("gmail-mcp-server");
    const view = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server")).json()) as { spec: { integrationConnections: string[] } };
    expect(view.spec.integrationConnections).toEqual(["gmail-google-oauth"]);
    expect(JSON.stringify(deployed)).not.toContain(REFRESH_TOKEN);

    const tools = (await core.getTool("gmail-mcp-server")) as Tool[];
    expect(tools.map((t) => t.name)).toEqual(["send_email"]);
    const out = await sendEmail("gmail-mcp-server", "friend@example.com", "Hi there");
    expect(out).toContain("Email sent to friend@example.com");
    const first = (await gmailRequests()).at(-1)!;
    expect(first.method).toBe("POST");
    expect(first.url).toBe("/gmail/v1/users/me/messages/send");
    const bearerA = String(first.headers.authorization).replace(/^Bearer /, "");
    expect(auth.valid(bearerA)).toBe(true);
    const raw = Buffer.from((JSON.parse(first.body) as { raw: string }).raw, "base64url").toString("utf8");
    expect(raw).toContain("To: friend@example.com\r\n");
    expect(raw).toContain("Subject: Hi there\r\n");
    expect(Buffer.from(raw.split("\r\n\r\n")[1]!, "base64").toString()).toBe("Hello from Hangar");
    // the token endpoint got the refresh grant, form-encoded
    expect(auth.requests[0]).toEqual({ grant_type: "refresh_token", refresh_token: REFRESH_TOKEN, client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    expect(auth.contentTypes[0]).toBe("application/x-www-form-urlencoded");

    // past the first token's expiry: a new one, valid, is what the API sees
    await new Promise((r) => setTimeout(r, 6_500));
    expect(auth.valid(bearerA)).toBe(false);
    expect(await sendEmail("gmail-mcp-server", "friend@example.com", "Again")).toContain("Email sent");
    const bearerB = String((await gmailRequests()).at(-1)!.headers.authorization).replace(/^Bearer /, "");
    expect(bearerB).not.toBe(bearerA);
    expect(auth.valid(bearerB)).toBe(true);
    console.log(`[oauth] ${auth.requests.length} token requests so far; bearer refreshed before expiry`);
  });

  it("keeps the refresh token and client secret out of the server's env, files, the store in clear and the logs", async () => {
    const pids = execFileSync("sh", ["-c", "pgrep -f 'gmail-mc[p].cjs' || true"], { encoding: "utf8" }).split("\n").filter(Boolean);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) {
      const env = readFileSync(`/proc/${pid}/environ`, "utf8");
      expect(env).toContain("GMAIL_API_URL=https://gmail.googleapis.com");
      for (const s of SECRETS) expect(env).not.toContain(s);
      // the writable places of its filesystem
      const found = execFileSync("sh", ["-c", `grep -rlsF -e '${REFRESH_TOKEN}' -e '${CLIENT_SECRET}' /proc/${pid}/root/tmp /proc/${pid}/root/root /proc/${pid}/root/home /proc/${pid}/root/var/tmp 2>/dev/null || true`], { encoding: "utf8" });
      expect(found).toBe("");
    }
    const inData = execFileSync("sh", ["-c", `grep -rlsF -e '${REFRESH_TOKEN}' -e '${CLIENT_SECRET}' ${h.dataDir} 2>/dev/null || true`], { encoding: "utf8" });
    expect(inData).toBe("");
    for (const s of SECRETS) expect(h.output()).not.toContain(s);
  });

  it("refuses connections it cannot bind: unknown, another workspace's, a model provider's; changing them makes a revision", async () => {
    const bad = await api(h, "PUT", "/v0/functions/nope", { metadata: { name: "nope" }, spec: { integrationConnections: ["missing"], runtime: { type: "mcp" } } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toContain("integration connection 'missing' not found");
    // a connection of another workspace is not found from this one
    expect((await api(h, "POST", "/v0/workspaces", { name: "other-team" })).status).toBe(200);
    const theirs = await api(h, "POST", "/v0/integrations/connections", { metadata: { name: "their-gmail" }, spec: { integration: "gmail", secret: { CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN } } }, { "x-blaxel-workspace": "other-team" });
    expect(theirs.status).toBe(200);
    const cross = await api(h, "PUT", "/v0/functions/nope", { metadata: { name: "nope" }, spec: { integrationConnections: ["their-gmail"], runtime: { type: "mcp" } } });
    expect(cross.status).toBe(400);
    expect(((await cross.json()) as { detail: string }).detail).toContain("integration connection 'their-gmail' not found in this workspace");
    const shape = await api(h, "PUT", "/v0/functions/nope", { metadata: { name: "nope" }, spec: { integrationConnections: "gmail-google-oauth" } });
    expect(shape.status).toBe(400);
    // a model provider's connection serves models, not functions
    expect((await api(h, "POST", "/v0/integrations/connections", { metadata: { name: "oa" }, spec: { integration: "openai", secret: { apiKey: "sk-test" } } })).status).toBe(200);
    const model = await api(h, "PUT", "/v0/functions/nope", { metadata: { name: "nope" }, spec: { integrationConnections: ["oa"], runtime: { type: "mcp" } } });
    expect(model.status).toBe(400);
    expect(((await model.json()) as { detail: string }).detail).toContain("serves models, not functions");
    const revsBefore = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server/revisions")).json()) as unknown[];
    const second = await api(h, "POST", "/v0/integrations/connections", { metadata: { name: "gmail-second" }, spec: { integration: "gmail", secret: { CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN: "1//0second-user" } } });
    expect(second.status).toBe(200);
    const cur = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server")).json()) as { spec: Record<string, unknown> };
    const put = await api(h, "PUT", "/v0/functions/gmail-mcp-server", { metadata: { name: "gmail-mcp-server" }, spec: { ...cur.spec, integrationConnections: ["gmail-second"], revision: undefined } });
    expect(put.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    await waitDeployed("gmail-mcp-server");
    const revsAfter = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server/revisions")).json()) as unknown[];
    expect(revsAfter.length).toBe(revsBefore.length + 1);
    // in use: cannot be deleted
    expect((await api(h, "DELETE", "/v0/integrations/connections/gmail-second")).status).toBe(409);
  });

  it("a revoked refresh token shows in the function's status and events, and its tool calls fail clearly", { timeout: 120_000 }, async () => {
    auth.revoke("1//0second-user");
    // the current token lives at most 6 s: the next refresh is refused
    let fn: { status: string; events: { status: string; message: string }[] } = { status: "", events: [] };
    for (let i = 0; i < 60 && fn.status !== "FAILED"; i++) {
      await new Promise((r) => setTimeout(r, 500));
      fn = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server")).json()) as typeof fn;
    }
    expect(fn.status).toBe("FAILED");
    expect(fn.events.at(-1)!.message).toContain("integration connection 'gmail-second'");
    expect(fn.events.at(-1)!.message).toContain("invalid_grant");
    // the tool call answers with the reason (the egress proxy answers the server's API call with it); the API saw nothing
    let err = "";
    for (let i = 0; i < 20 && !err.includes("invalid_grant"); i++) {
      if (i) await new Promise((r) => setTimeout(r, 250));
      err = await sendEmail("gmail-mcp-server", "x@example.com", "no");
    }
    expect(err).toContain('"isError":true');
    expect(err).toContain("the Gmail API answered 502: Hangar egress proxy: integration connection 'gmail-second'");
    expect(err).toContain("invalid_grant");
    const seen = (await gmailRequests()).length;
    expect(await sendEmail("gmail-mcp-server", "x@example.com", "no")).toContain("invalid_grant");
    expect((await gmailRequests()).length).toBe(seen);
    // the user authorized again: the backend updates the connection's refresh token (the others kept)
    const upd = await api(h, "PUT", "/v0/integrations/connections/gmail-second", { metadata: { name: "gmail-second" }, spec: { integration: "gmail", secret: { REFRESH_TOKEN } } });
    expect(upd.status).toBe(200);
    let out = "";
    for (let i = 0; i < 40 && !out.includes("Email sent"); i++) {
      await new Promise((r) => setTimeout(r, 500));
      out = await sendEmail("gmail-mcp-server", "x@example.com", "back").catch((e: Error) => e.message);
    }
    expect(out).toContain("Email sent");
    fn = (await (await api(h, "GET", "/v0/functions/gmail-mcp-server")).json()) as typeof fn;
    expect(fn.status).toBe("DEPLOYED");
  });

  it("loses nothing to a kill -9: the connection, the function and its bearer injection come back", { timeout: 180_000 }, async () => {
    const before = auth.requests.length;
    await h.kill9();
    h = await h.restart();
    useSdkAgainst(h);
    let out = "";
    for (let i = 0; i < 120 && !out.includes("Email sent"); i++) {
      out = await sendEmail("gmail-mcp-server", "after@example.com", "after restart").catch((e: Error) => e.message);
      if (!out.includes("Email sent")) await new Promise((r) => setTimeout(r, 500));
    }
    expect(out).toContain("Email sent to after@example.com");
    const bearer = String((await gmailRequests()).at(-1)!.headers.authorization).replace(/^Bearer /, "");
    expect(auth.valid(bearer)).toBe(true);
    expect(auth.requests.length).toBeGreaterThanOrEqual(before);
    const conn = (await (await api(h, "GET", "/v0/integrations/connections/gmail-google-oauth")).json()) as { spec: { secret: Record<string, string> } };
    expect(conn.spec.secret).toEqual({ CLIENT_ID: "", CLIENT_SECRET: "", REFRESH_TOKEN: "" });
  });
});
