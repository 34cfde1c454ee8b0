// The model gateway: a chat completion sent to a stand-in provider straight, through Hangar's
// run plane, and through Portkey's open-source gateway (@portkey-ai/gateway, its own process,
// production mode) in front of the same stand-in, alternated in one run. Non-streaming latency,
// streaming time to first chunk, and throughput (wrk) of each.

import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningHangar, REPO, api } from "@hangar/testkit";
import { type Row, dist, fmt, has, run } from "./stats.js";

const keepAlive = new Agent({ keepAlive: true, maxSockets: 8 });
const CHAT = JSON.stringify({ model: "stand-in-model", messages: [{ role: "user", content: "hi" }] });
const STREAM = JSON.stringify({ model: "stand-in-model", messages: [{ role: "user", content: "hi" }], stream: true });

/** POSTs and resolves with ms to the first body byte and to the end. */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ first: number; total: number; status: number; text: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, agent: keepAlive }, (res) => {
      let first = 0;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (!first) first = performance.now() - t0;
        text += d;
      });
      res.on("end", () => resolve({ first, total: performance.now() - t0, status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Starts a node process that prints its port on its first line of stdout. */
function startChild(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start: ${out.slice(-1000)}`)), 30_000);
    const check = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, match: m });
      }
    };
    proc.stdout!.on("data", check);
    proc.stderr!.on("data", check);
    proc.on("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}: ${out.slice(-1000)}`)));
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export async function benchGateway(h: RunningHangar, out: { rows: Row[]; notes: string[]; log: (m: string) => void }): Promise<void> {
  const children: ChildProcess[] = [];
  try {
    // the stand-in provider in its own process, so neither client nor gateways share its event loop
    const standInJs = join(REPO, "packages/gateway/dist/testing/provider-stand-in.js");
    const standIn = await startChild(["--input-type=module", "-e", `const { startProviderStandIn } = await import(${JSON.stringify(standInJs)}); const s = await startProviderStandIn({ record: false }); console.log("port " + s.port);`], process.env, /port (\d+)/);
    children.push(standIn.proc);
    const providerUrl = `http://127.0.0.1:${standIn.match[1]}`;

    const portkeyJs = createRequire(import.meta.url).resolve("@portkey-ai/gateway/build/start-server.js");
    const pkPort = await freePort();
    const portkey = await startChild([portkeyJs, `--port=${pkPort}`, "--headless"], { ...process.env, NODE_ENV: "production", TRUSTED_CUSTOM_HOSTS: "127.0.0.1,localhost" }, /(listening|running|Ready|port)/i);
    children.push(portkey.proc);
    await new Promise((r) => setTimeout(r, 300));

    const conn = await api(h, "PUT", "/v0/integrations/connections/bench-provider", { metadata: { name: "bench-provider" }, spec: { integration: "openai", config: { url: providerUrl }, secret: { apiKey: "sk-bench" } } });
    if (!conn.ok) throw new Error(`connection: ${conn.status} ${await conn.text()}`);
    const model = await api(h, "PUT", "/v0/models/bench-model", { metadata: { name: "bench-model" }, spec: { runtime: { type: "openai", model: "stand-in-model" }, integrationConnections: ["bench-provider"] } });
    if (!model.ok) throw new Error(`model: ${model.status} ${await model.text()}`);

    const targets = {
      direct: { url: `${providerUrl}/v1/chat/completions`, headers: { authorization: "Bearer sk-bench" } },
      hangar: { url: `${h.url}/run/default/models/bench-model/v1/chat/completions`, headers: { authorization: `Bearer ${h.apiKey}` } },
      portkey: { url: `http://127.0.0.1:${pkPort}/v1/chat/completions`, headers: { authorization: "Bearer sk-bench", "x-portkey-provider": "openai", "x-portkey-custom-host": `${providerUrl}/v1` } },
    };
    type Name = keyof typeof targets;
    const names = Object.keys(targets) as Name[];
    /** Targets whose streams work (Portkey 1.15's fail on Node 20: its response headers are immutable there). */
    const streaming: Name[] = [];
    for (const n of names) {
      const r = await post(targets[n].url, targets[n].headers, CHAT);
      if (r.status !== 200 || !r.text.includes("stand-in")) throw new Error(`${n} answered ${r.status}: ${r.text.slice(0, 300)}`);
      const s = await post(targets[n].url, targets[n].headers, STREAM);
      if (s.status === 200 && s.text.includes("[DONE]")) streaming.push(n);
      else if (n === "portkey") out.notes.push(`Portkey's streaming answered ${s.status} ${s.text.slice(0, 120)} (a TypeError "immutable" appending to the upstream response's headers under Node ${process.versions.node}); its time to first chunk is not measured`);
      else throw new Error(`${n} stream answered ${s.status}: ${s.text.slice(0, 300)}`);
    }
    // warm up, then alternate so drift hits all alike
    for (let i = 0; i < 100; i++) for (const n of names) await post(targets[n].url, targets[n].headers, i % 2 && streaming.includes(n) ? STREAM : CHAT);
    const plain: Record<Name, number[]> = { direct: [], hangar: [], portkey: [] };
    const ttfc: Record<Name, number[]> = { direct: [], hangar: [], portkey: [] };
    for (let i = 0; i < 400; i++) {
      for (const n of names) plain[n].push((await post(targets[n].url, targets[n].headers, CHAT)).total);
      for (const n of streaming) ttfc[n].push((await post(targets[n].url, targets[n].headers, STREAM)).first);
    }
    const p = Object.fromEntries(names.map((n) => [n, dist(plain[n])])) as Record<Name, ReturnType<typeof dist>>;
    const f = Object.fromEntries(names.map((n) => [n, dist(ttfc[n])])) as Record<Name, ReturnType<typeof dist>>;
    const added = (d: Record<Name, ReturnType<typeof dist>>, n: Name) => d[n].p50 - d.direct.p50;
    out.rows.push({
      measure: "model gateway: chat completion, non-streaming (added p50 over direct)",
      hangar: `+${fmt(added(p, "hangar"))} ms (p50 ${fmt(p.hangar.p50)}, p90 ${fmt(p.hangar.p90)})`,
      peer: `Portkey +${fmt(added(p, "portkey"))} ms (p50 ${fmt(p.portkey.p50)}); direct p50 ${fmt(p.direct.p50)} ms`,
      ratio: `${fmt(added(p, "hangar") / added(p, "portkey"))}× Portkey's`,
      target: "≤ +1 ms, ≤ Portkey",
      met: added(p, "hangar") <= 1 && added(p, "hangar") <= added(p, "portkey"),
    });
    const pkStream = streaming.includes("portkey");
    out.rows.push({
      measure: "model gateway: streaming, time to first chunk (added p50 over direct)",
      hangar: `+${fmt(added(f, "hangar"))} ms (p50 ${fmt(f.hangar.p50)}, p90 ${fmt(f.hangar.p90)})`,
      peer: `${pkStream ? `Portkey +${fmt(added(f, "portkey"))} ms (p50 ${fmt(f.portkey.p50)})` : "Portkey: streaming fails (note)"}; direct p50 ${fmt(f.direct.p50)} ms`,
      ratio: pkStream ? `${fmt(added(f, "hangar") / added(f, "portkey"))}× Portkey's` : "",
      target: "≤ +1 ms, ≤ Portkey",
      met: added(f, "hangar") <= 1 && (!pkStream || added(f, "hangar") <= added(f, "portkey")),
    });

    if (has("wrk")) {
      const script = join(tmpdir(), `hangar-bench-chat-${process.pid}.lua`);
      writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(CHAT)}\nwrk.headers["Content-Type"] = "application/json"\n`);
      const rps = async (n: Name) => {
        const hdrs = Object.entries(targets[n].headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
        const o = await run("wrk", ["-t2", "-c32", "-d5s", "-s", script, ...hdrs, targets[n].url]);
        const m = /Requests\/sec:\s+([\d.]+)/.exec(o);
        if (!m || /Non-2xx or 3xx responses/.test(o)) throw new Error(`wrk against ${n}: ${o}`);
        return Number(m[1]);
      };
      const r: Record<Name, number> = { direct: await rps("direct"), hangar: await rps("hangar"), portkey: await rps("portkey") };
      out.rows.push({
        measure: "model gateway throughput (wrk -c32, chat completion)",
        hangar: `${r.hangar.toFixed(0)} req/s`,
        peer: `Portkey ${r.portkey.toFixed(0)} req/s; direct ${r.direct.toFixed(0)} req/s`,
        ratio: `${(r.hangar / r.portkey).toFixed(2)}× Portkey`,
        target: "≥ Portkey",
        met: r.hangar >= r.portkey,
      });
    }
    await api(h, "DELETE", "/v0/models/bench-model");
    await api(h, "DELETE", "/v0/integrations/connections/bench-provider");
  } finally {
    for (const c of children) c.kill("SIGTERM");
  }
}
