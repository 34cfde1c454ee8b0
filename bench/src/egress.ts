// Egress proxy benchmark: HTTPS requests from inside sandboxes to a stand-in server (in a network
// namespace, with its own CA and DNS), through the egress proxy (intercepted, a header with a secret
// injected) against the same requests from a sandbox without a policy (direct, NAT).

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeInternet } from "@hangar/egress-proxy/testing";
import { type RunningHangar, api, startHangar } from "@hangar/testkit";
import { type Dist, type Row, dist, fmt } from "./stats.js";


// Runs in the sandbox (Node 18 of the base image): latency on one kept-alive connection, requests
// per second over many, or the rate of one large download. The sandboxes get 4 GiB, so 2 vCPUs: a
// CPU quota would throttle the TLS work of curl and Node and measure the quota, not the proxy.
const CLIENT = String.raw`
const https = require("https");
const [, , what, url, arg1, arg2] = process.argv;
const agent = new https.Agent({ keepAlive: true, maxSockets: Number(what === "rps" ? arg1 : 1) });
function get(u) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    https.get(u, { agent }, (r) => {
      let len = 0;
      r.on("data", (d) => (len += d.length));
      r.on("end", () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, len, status: r.statusCode }));
    }).on("error", reject);
  });
}
(async () => {
  if (what === "latency") {
    for (let i = 0; i < 30; i++) await get(url);
    const ms = [];
    for (let i = 0; i < Number(arg1); i++) ms.push((await get(url)).ms);
    console.log(JSON.stringify({ ms }));
  } else if (what === "rps") {
    const end = Date.now() + Number(arg2) * 1000;
    let n = 0;
    await Promise.all(Array.from({ length: Number(arg1) }, async () => { while (Date.now() < end) { await get(url); n++; } }));
    console.log(JSON.stringify({ rps: n / Number(arg2) }));
  } else {
    await get(url + "?n=1000");
    const r = await get(url + "?n=" + arg1);
    console.log(JSON.stringify({ mbps: r.len / 1048576 / (r.ms / 1000), len: r.len }));
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

const HOST = "api.bench.test";

async function ok(res: Promise<Response>, what: string): Promise<Response> {
  const r = await res;
  if (!r.ok) throw new Error(`${what}: HTTP ${r.status} ${await r.text()}`);
  return r;
}

async function exec(h: RunningHangar, name: string, command: string): Promise<string> {
  const r = (await (await ok(api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, waitForCompletion: true, timeout: 300 }), `exec in ${name}`)).json()) as {
    stdout: string;
    stderr: string;
    exitCode: number;
  };
  if (r.exitCode !== 0) throw new Error(`${command} in ${name}: exit ${r.exitCode}: ${r.stderr.slice(-500)}`);
  return r.stdout;
}

function distCell(d: Dist): string {
  return `p50 ${fmt(d.p50)} ms, p90 ${fmt(d.p90)} ms`;
}

export async function benchEgress(o: { rows: Row[]; notes: string[]; log: (m: string) => void; n?: number }): Promise<void> {
  const N = o.n ?? 300;
  o.log("egress proxy: proxied (intercepted + injected) vs direct HTTPS from sandboxes");
  const net = await FakeInternet.start({ name: "egbench", subnet: "198.51.100.128/25", hosts: [{ names: [HOST] }] });
  const dir = mkdtempSync(join(tmpdir(), "hangar-bench-egress-"));
  writeFileSync(join(dir, "ca.pem"), net.ca.certPem);
  let h: RunningHangar | null = null;
  try {
    h = await startHangar({
      env: {
        HANGAR_STANDBY_IDLE: "1h",
        HANGAR_LOG_LEVEL: "warn",
        HANGAR_SANDBOX_DNS: net.dns,
        HANGAR_EGRESS_CA_FILES: join(dir, "ca.pem"),
        HANGAR_NETWORK_PREFIX: "hgb",
        HANGAR_NETWORK_TABLE: "hangar_bench_egress",
        HANGAR_SANDBOX_CIDR: "10.232.0.0/24",
      },
    });
    const policy = {
      allowedDomains: [HOST],
      proxy: { routing: [{ destinations: [HOST], headers: { Authorization: "Bearer {{SECRET:key}}" }, secrets: { key: "sk-bench-0123456789" } }] },
    };
    await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name: "egress-direct" }, spec: { runtime: { memory: 4096 } } }), "create direct");
    await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name: "egress-proxied" }, spec: { runtime: { memory: 4096 }, network: policy } }), "create proxied");
    for (const name of ["egress-direct", "egress-proxied"]) {
      await ok(api(h, "PUT", `/run/default/sandboxes/${name}/filesystem/${encodeURIComponent("/tmp/client.js")}`, { content: CLIENT }), "write client");
    }
    // the direct sandbox trusts the stand-in's CA through the bundle every sandbox has
    const node = (name: string, args: string) => exec(h!, name, `NODE_EXTRA_CA_CERTS=/.hangar/ca/ca.crt node /tmp/client.js ${args}`);
    const url = `https://${HOST}/ping`;

    // one kept-alive connection: what interception adds to each request
    const direct = dist((JSON.parse(await node("egress-direct", `latency ${url} ${N}`)) as { ms: number[] }).ms);
    const proxied = dist((JSON.parse(await node("egress-proxied", `latency ${url} ${N}`)) as { ms: number[] }).ms);
    o.rows.push({
      measure: "egress: HTTPS request, kept-alive (proxied = intercepted + injected)",
      hangar: distCell(proxied),
      peer: `direct: ${distCell(direct)}`,
      ratio: `+${fmt(proxied.p50 - direct.p50)} ms p50 (${(proxied.p50 / direct.p50).toFixed(1)}×)`,
      target: "",
      met: null,
    });

    // curl, a new connection per request: CONNECT + TLS to the proxy vs TCP + TLS to the server
    const curl = async (name: string) => {
      const out = await exec(h!, name, `for i in $(seq 100); do curl -s -o /dev/null -w '%{time_total}\\n' ${url}; done`);
      return dist(out.trim().split("\n").map((s) => Number(s) * 1000));
    };
    await curl("egress-direct");
    const cDirect = await curl("egress-direct");
    const cProxied = await curl("egress-proxied");
    o.rows.push({
      measure: "egress: curl HTTPS request with its connection (CONNECT)",
      hangar: distCell(cProxied),
      peer: `direct: ${distCell(cDirect)}`,
      ratio: `+${fmt(cProxied.p50 - cDirect.p50)} ms p50 (${(cProxied.p50 / cDirect.p50).toFixed(1)}×)`,
      target: "",
      met: null,
    });

    // throughput: 32 kept-alive connections for 5 s, and one 64 MiB download
    const rps = async (name: string) => (JSON.parse(await node(name, `rps ${url} 32 5`)) as { rps: number }).rps;
    const rDirect = await rps("egress-direct");
    const rProxied = await rps("egress-proxied");
    o.rows.push({
      measure: "egress: proxied throughput (32 connections, req/s)",
      hangar: `${Math.round(rProxied)} req/s`,
      peer: `direct: ${Math.round(rDirect)} req/s`,
      ratio: `${(rProxied / rDirect).toFixed(2)}× direct`,
      target: "",
      met: null,
    });
    const bulk = async (name: string) => (JSON.parse(await node(name, `bulk https://${HOST}/bytes ${64 * 1024 * 1024}`)) as { mbps: number }).mbps;
    const bDirect = await bulk("egress-direct");
    const bProxied = await bulk("egress-proxied");
    o.rows.push({
      measure: "egress: proxied download, 64 MiB (MiB/s)",
      hangar: `${Math.round(bProxied)} MiB/s`,
      peer: `direct: ${Math.round(bDirect)} MiB/s`,
      ratio: `${(bProxied / bDirect).toFixed(2)}× direct`,
      target: "",
      met: null,
    });
  } finally {
    await h?.dispose();
    execFileSync("sh", ["-c", "nft delete table inet hangar_bench_egress 2>/dev/null || true"]);
    await net.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
