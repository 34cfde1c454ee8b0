// Agents: a small HTTP agent deployed from source, called through its run URL (edge → replica)
// against the same request sent straight to the replica's address, in the same run; and the
// throughput of both with wrk.

import { Agent, request } from "node:http";
import { type RunningHangar, api, zipFiles } from "@hangar/testkit";
import { withNginx, wrk } from "./peers.js";
import { type Row, dist, fmt, has } from "./stats.js";

const APP = {
  Dockerfile: 'FROM hangar/base\nWORKDIR /a\nCOPY . .\nCMD ["node", "a.js"]\n',
  // answers with its own address, so the bench can also call it directly
  "a.js": `const os = require("os");
const ip = Object.values(os.networkInterfaces()).flat().find((i) => i.family === "IPv4" && !i.internal).address;
require("http").createServer((q, s) => { q.resume(); q.on("end", () => s.end(ip)); }).listen(Number(process.env.PORT), process.env.HOST);
`,
};

const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });

function post(url: URL, headers: Record<string, string>): Promise<{ ms: number; body: string; status: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers, agent: keepAlive }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ ms: performance.now() - t0, body, status: res.statusCode ?? 0 }));
    });
    req.on("error", reject);
    req.end("{}");
  });
}

export async function benchAgent(h: RunningHangar, out: { rows: Row[]; log: (m: string) => void }): Promise<void> {
  const res = await api(h, "PUT", "/v0/agents/bench-agent?upload=true", { metadata: { name: "bench-agent" }, spec: { runtime: { memory: 2048, maxScale: 1 } } }); // one replica, as nginx has one upstream
  const url = res.headers.get("x-blaxel-upload-url");
  if (!url) throw new Error(`no upload URL: ${res.status}`);
  await fetch(url, { method: "PUT", body: zipFiles(APP) });
  for (let i = 0; ; i++) {
    const a = (await (await api(h, "GET", "/v0/agents/bench-agent")).json()) as { status: string; events: { message: string }[] };
    if (a.status === "DEPLOYED") break;
    if (a.status === "FAILED" || i > 1200) throw new Error(`the bench agent is ${a.status}: ${a.events.at(-1)?.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const runUrl = new URL(`${h.url}/run/default/agents/bench-agent`);
  const auth = { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" };
  const ip = (await post(runUrl, auth)).body;
  const direct = new URL(`http://${ip}:80/`);
  // warm both paths, then alternate so drift hits both alike
  for (let i = 0; i < 50; i++) await Promise.all([post(runUrl, auth), post(direct, { "content-type": "application/json" })]);
  const viaEdge: number[] = [];
  const straight: number[] = [];
  for (let i = 0; i < 500; i++) {
    const e = await post(runUrl, auth);
    const d = await post(direct, { "content-type": "application/json" });
    if (e.status !== 200 || d.status !== 200) throw new Error(`bad answers: ${e.status} / ${d.status}`);
    viaEdge.push(e.ms);
    straight.push(d.ms);
  }
  const e = dist(viaEdge);
  const d = dist(straight);
  out.rows.push({
    measure: "agent call through the run plane (POST, kept-alive)",
    hangar: `p50 ${fmt(e.p50)} ms, p90 ${fmt(e.p90)} ms`,
    peer: `straight to the replica: p50 ${fmt(d.p50)} ms`,
    ratio: `+${fmt(e.p50 - d.p50)} ms`,
    target: "≤ +0.5 ms",
    met: e.p50 - d.p50 <= 0.5,
  });
  if (has("wrk") && has("nginx")) {
    await withNginx(`${ip}:80`, async (nginxPort) => {
      await wrk(runUrl.href, 2, { Authorization: `Bearer ${h.apiKey}` });
      const viaRps = await wrk(runUrl.href, 6, { Authorization: `Bearer ${h.apiKey}` });
      const nginxRps = await wrk(`http://127.0.0.1:${nginxPort}/`, 6);
      const directRps = await wrk(direct.href, 6);
      out.rows.push({
        measure: "agent throughput through the run plane (wrk -c32, GET)",
        hangar: `${viaRps.toFixed(0)} req/s`,
        peer: `nginx → replica: ${nginxRps.toFixed(0)} req/s (direct: ${directRps.toFixed(0)})`,
        ratio: `${(viaRps / nginxRps).toFixed(2)}× nginx`,
        target: "≥ 0.9× nginx",
        met: viaRps / nginxRps >= 0.9,
      });
    });
  }
  await api(h, "DELETE", "/v0/agents/bench-agent");
}
