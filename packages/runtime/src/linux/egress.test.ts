// Egress through the node's proxy at the driver level: the variables and CA a policed sandbox gets,
// TCP 80/443 redirected to the proxy, everything else cut off ("enforced"), live updates, and the
// egress sets after a server restart and a destroy. "The internet" is a stand-in in a netns.

import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateAuthority, EgressProxy } from "@hangar/egress-proxy";
import { DOCS_EXAMPLE, FakeInternet } from "@hangar/egress-proxy/testing";
import type { RuntimeNetwork, SandboxHandle } from "../driver.js";
import { runtimeNetworkOf } from "../egress.js";
import { LinuxDriver } from "./driver.js";
import { agentSh, freshDriver, linuxDriverAvailable, spec, testDriverOptions } from "./testkit.js";

const STRIPE_KEY = "sk-live-abc123...";
let net: FakeInternet;
let proxy: EgressProxy;
let driver: LinuxDriver;
let opts: ReturnType<typeof testDriverOptions>;

function nftSet(name: string): string {
  return spawnSync("nft", ["list", "set", "inet", "hangar_test_egr", name], { encoding: "utf8" }).stdout;
}

async function createWith(id: string, network: Record<string, unknown> | undefined): Promise<SandboxHandle> {
  const rn = runtimeNetworkOf(network);
  const h = await driver.create(spec(id, rn ? { network: rn } : {}));
  proxy.setSandbox(id, h.address, network);
  return h;
}

describe.skipIf(!linuxDriverAvailable())("egress through the proxy (linux driver)", () => {
  beforeAll(async () => {
    net = await FakeInternet.start({
      name: "egrt",
      subnet: "203.0.113.128/25",
      hosts: [{ names: ["api.stripe.com"] }, { names: ["api.openai.com"], h1only: true }, { names: ["httpbin.org"] }, { names: ["evil.com"] }, { names: ["s3.amazonaws.com", "*.s3.amazonaws.com"] }],
    });
    const ca = CertificateAuthority.create();
    opts = testDriverOptions("egr", 12);
    proxy = new EgressProxy({ ca, dns: [net.dns], extraCa: [net.ca.certPem], deniedCidrs: ["10.89.12.0/24"] });
    const port = await proxy.listen(0, "0.0.0.0");
    opts.network = { ...(opts.network || {}), dns: [net.dns] };
    // sandboxes trust the Hangar CA and, like a deployment with a corporate CA, the stand-ins' CA
    opts.egress = { port, caPem: ca.certPem + net.ca.certPem };
    driver = await freshDriver(opts);
  }, 300_000);

  afterAll(async () => {
    await driver?.purge();
    await proxy?.close();
    await net?.stop();
  });

  it("leaves a sandbox without a policy direct, with the CA in its trust store only", async () => {
    const h = await createWith("egr1", undefined);
    expect(h.env.HTTPS_PROXY).toBeUndefined();
    const r = await agentSh(h, "curl -sS -m 5 https://evil.com/x && printf '\\n' && nc -w 3 evil.com 9000 && grep -c 'BEGIN CERTIFICATE' /.hangar/ca/ca.crt");
    expect(r.stdout).toContain('"servedBy":"evil.com"');
    expect(r.stdout).toContain("hello from evil.com");
    expect(r.stdout.trim().split("\n").pop()).toBe("2");
    await driver.destroy("egr1");
  });

  it("sends a policed sandbox's HTTP(S) through the proxy and cuts everything else (the docs' example)", async () => {
    const h = await createWith("egr2", DOCS_EXAMPLE);
    const gw = `${h.address.split(".").slice(0, 3).join(".")}.${Number(h.address.split(".")[3]) - 1}`;
    expect(h.env).toMatchObject({
      HTTP_PROXY: `http://${gw}:${proxy.port}`,
      https_proxy: `http://${gw}:${proxy.port}`,
      SSL_CERT_FILE: "/.hangar/ca/bundle.crt",
      NODE_EXTRA_CA_CERTS: "/.hangar/ca/ca.crt",
      REQUESTS_CA_BUNDLE: "/.hangar/ca/bundle.crt",
      GIT_SSL_CAINFO: "/.hangar/ca/bundle.crt",
    });
    expect(h.env.NO_PROXY).toBe("localhost,127.0.0.1,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.169.254,.local,.internal,.s3.amazonaws.com");

    // curl through HTTPS_PROXY: injected, the key redacted from the echo
    let r = await agentSh(h, "curl -sS -m 5 https://api.stripe.com/v1/charges");
    expect(r.stdout).toContain('"authorization":"Bearer [REDACTED]"');
    expect(r.stdout).not.toContain(STRIPE_KEY);
    expect((await net.requests()).pop()?.headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    // evil.com: refused at CONNECT; direct sockets: dropped
    r = await agentSh(h, "curl -sS -m 5 https://evil.com/ ; echo exit=$?");
    expect(r.stderr).toContain("CONNECT tunnel failed, response 403");
    expect(r.stdout).toContain("exit=56");
    r = await agentSh(h, `nc -w 1 evil.com 9000; echo exit=$?; nc -w 1 httpbin.org 9000; echo exit=$?; ping -c1 -W1 ${net.ipOf("evil.com")} >/dev/null 2>&1; echo ping=$?`);
    expect(r.stdout).not.toContain("hello from");
    expect(r.stdout).toContain("ping=1");
    // a program that ignores the proxy variables still lands on the proxy (ports 80/443)
    const evil = net.ipOf("evil.com");
    r = await agentSh(
      h,
      `curl -sS -m 5 --noproxy '*' https://evil.com/ ; curl -sS -m 5 --noproxy '*' --resolve evil.com:443:${evil} https://evil.com/ ; echo; curl -sS -m 5 --noproxy '*' --resolve evil.com:80:${evil} http://evil.com/; curl -sS -m 5 --noproxy '*' https://api.stripe.com/direct`,
    );
    expect(r.stderr).toContain("Could not resolve host: evil.com");
    expect(r.stdout).toMatch(/evil.com is not allowed by this sandbox's network policy[\s\S]*evil.com is not allowed/);
    expect(r.stdout).toContain('"url":"/direct"');
    expect(r.stdout).toContain("[REDACTED]");
    // Node (no proxy support of its own) and Python's urllib, with no extra setup
    r = await agentSh(h, `node -e 'require("https").get("https://api.stripe.com/node", (res) => { let b = ""; res.on("data", (d) => (b += d)); res.on("end", () => console.log(res.statusCode, b.includes("[REDACTED]"))); }).on("error", (e) => console.log("error", e.message))'`);
    expect(r.stdout.trim()).toBe("200 true");
    r = await agentSh(h, `python3 -c 'import urllib.request as u; print(u.urlopen("https://api.openai.com/v1/models").read().decode())'`);
    expect(r.stdout).toContain('"httpVersion":"1.1"');
    expect((await net.requests()).pop()?.headers.authorization).toBe("Bearer sk-proj-xyz789...");
    // Python's requests, and pip against an index (the stand-in is no index: pip gets there over
    // TLS through the proxy and finds no package, rather than failing on the certificate)
    r = await agentSh(h, `python3 -c 'import requests; r = requests.get("https://api.openai.com/v1/requests"); print(r.status_code)'`);
    expect(r.stdout.trim()).toBe("200");
    expect((await net.requests()).pop()).toMatchObject({ url: "/v1/requests", headers: { authorization: "Bearer sk-proj-xyz789..." } });
    r = await agentSh(h, "pip download --no-deps --no-cache-dir -d /tmp/pip --index-url https://api.stripe.com/simple/ hangar-demo 2>&1; true");
    expect(r.stdout).not.toMatch(/SSL|certificate|ProxyError/i);
    expect(r.stdout).toMatch(/No matching distribution found for hangar-demo/);
    expect((await net.requests()).some((q) => q.url.startsWith("/simple/hangar-demo") && String(q.headers["user-agent"]).startsWith("pip/"))).toBe(true);
    // git over HTTPS goes through the proxy with the CA (the stand-in is no git server)
    r = await agentSh(h, "git ls-remote https://api.stripe.com/repo.git 2>&1; true");
    expect(r.stdout).not.toMatch(/SSL|certificate/i);
    expect((await net.requests()).some((q) => q.url.startsWith("/repo.git/info/refs") && String(q.headers["user-agent"]).startsWith("git/"))).toBe(true);
    // bypass: NO_PROXY sends curl direct, the redirect relays it untouched
    r = await agentSh(h, "curl -sS -m 5 https://bucket.s3.amazonaws.com/obj");
    expect(r.stdout).toContain('"host":"bucket.s3.amazonaws.com"');
    expect(r.stdout).not.toContain("x-blaxel-request-id");
    // DNS still resolves; the metadata address stays out of reach
    r = await agentSh(h, "getent hosts api.stripe.com; getent hosts evil.com || echo evil=unresolved; curl -sS -m 3 http://169.254.169.254/ ; echo exit=$?");
    expect(r.stdout).toContain(net.ipOf("api.stripe.com"));
    expect(r.stdout).toContain("evil=unresolved");
    expect(r.stdout).toMatch(/not allowed|sandboxes may not reach it/);
    await driver.destroy("egr2");
    expect(nftSet("egress_proxy4")).not.toContain(h.address);
    // node, python, pip and git each start cold in a sandbox of 1/4 vCPU: seconds each on a busy machine
  }, 120_000);

  it("applies a new mode live, cutting direct connections already open", async () => {
    const h = await createWith("egr3", undefined);
    // a direct, streaming connection opened before the policy (port 80 is not redirected yet)
    const streaming = agentSh(h, "curl -sS -N -m 6 'http://evil.com/stream?chunks=40&ms=100' | wc -l", { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 700));
    const enforced: RuntimeNetwork = { egress: "enforced", bypass: [] };
    const env = await driver.updateNetwork("egr3", enforced);
    proxy.setSandbox("egr3", h.address, { allowedDomains: ["httpbin.org"] });
    expect(env.HTTPS_PROXY).toMatch(/^http:\/\/10\.89\.12\.\d+:\d+$/);
    const lines = Number((await streaming).stdout.trim());
    expect(lines).toBeLessThan(60); // 40 events are 80 lines; the flow was cut midway
    expect(lines).toBeGreaterThan(0);
    let r = await agentSh(h, "nc -w 1 evil.com 9000; curl -sS -m 5 https://httpbin.org/ok", { env });
    expect(r.stdout).not.toContain("hello from");
    expect(r.stdout).toContain('"servedBy":"httpbin.org"');
    // and back to direct
    const direct = await driver.updateNetwork("egr3", undefined);
    proxy.setSandbox("egr3", h.address, undefined);
    expect(direct.HTTPS_PROXY).toBeUndefined();
    r = await agentSh(h, "nc -w 3 evil.com 9000", { env: direct });
    expect(r.stdout).toContain("hello from evil.com");
  });

  it("polices a gVisor sandbox the same way", async () => {
    if (!driver.gvisor) return;
    const rn = runtimeNetworkOf(DOCS_EXAMPLE)!;
    const h = await driver.create(spec("egr5", { runtimeClass: "gvisor", network: rn }));
    proxy.setSandbox("egr5", h.address, DOCS_EXAMPLE);
    const r = await agentSh(h, "curl -sS -m 5 https://api.stripe.com/g; echo; nc -w 1 evil.com 9000; echo nc=$?; grep -c 'BEGIN CERT' /.hangar/ca/bundle.crt");
    expect(r.stdout).toContain("[REDACTED]");
    expect(r.stdout).toContain("nc=1");
    expect(Number(r.stdout.trim().split("\n").pop())).toBeGreaterThan(2);
    await driver.destroy("egr5");
  });

  it("keeps the egress sets across a server restart and empties them on destroy", async () => {
    const h = await createWith("egr4", { allowedDomains: ["httpbin.org"] });
    await driver.close();
    driver = new LinuxDriver(opts);
    await driver.preflight();
    const again = await driver.adopt(spec("egr4", { network: { egress: "enforced", bypass: [] } }));
    expect(again?.address).toBe(h.address);
    expect(nftSet("egress_enforce4")).toContain(h.address);
    const r = await agentSh(again!, "nc -w 1 evil.com 9000; echo exit=$?");
    expect(r.stdout).not.toContain("hello from");
    await driver.destroy("egr4");
    await driver.destroy("egr3");
    expect(nftSet("egress_proxy4")).not.toMatch(/10\.89\.12\.\d+/);
    expect(nftSet("egress_enforce4")).not.toMatch(/10\.89\.12\.\d+/);
  });
});
