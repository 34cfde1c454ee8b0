// Forks: a running sandbox with a process (a counter written to a file every 50 ms) is forked
// through the API; measured until the fork answers (its sandbox API reads the counter file, the
// counter still advancing there), against creating a new sandbox until it answers, in the same run.

import { type RunningHangar, api } from "@hangar/testkit";
import { type Row, dist, fmt } from "./stats.js";

const COUNTER = "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'";

async function ok(r: Promise<Response>, what: string): Promise<Response> {
  const res = await r;
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

/** Reads /tmp/count through the sandbox API (the data plane). */
async function readCount(h: RunningHangar, name: string): Promise<number> {
  const res = await ok(fetch(`${h.url}/run/default/sandboxes/${name}/filesystem/${encodeURIComponent("/tmp/count")}`, { headers: { authorization: `Bearer ${h.apiKey}` } }), `read count of ${name}`);
  const body = await res.text();
  const n = Number((body.trim().startsWith("{") ? (JSON.parse(body) as { content?: string }).content ?? "" : body).trim());
  if (!Number.isFinite(n)) throw new Error(`bad counter in ${name}: ${body.slice(0, 100)}`);
  return n;
}

async function gone(h: RunningHangar, name: string): Promise<void> {
  await api(h, "DELETE", `/v0/sandboxes/${name}`);
  for (let i = 0; i < 200 && (await api(h, "GET", `/v0/sandboxes/${name}`)).status !== 404; i++) await new Promise((r) => setTimeout(r, 50));
}

export async function benchFork(h: RunningHangar, out: { rows: Row[]; notes: string[]; log: (m: string) => void }, n = 10): Promise<void> {
  await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name: "bench-fork-src" }, spec: { runtime: { image: "blaxel/base-image:latest", memory: 1024 } } }), "create source");
  await ok(fetch(`${h.url}/run/default/sandboxes/bench-fork-src/process`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ name: "counter", command: COUNTER }) }), "start counter");
  await new Promise((r) => setTimeout(r, 300));
  const fork: number[] = [];
  const create: number[] = [];
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const name = `bench-fork-${i}`;
    let t0 = performance.now();
    await ok(api(h, "POST", "/v0/sandboxes/bench-fork-src/fork", { targetName: name, targetType: "sandbox" }), "fork");
    const c = await readCount(h, name);
    fork.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 150));
    if ((await readCount(h, name)) > c) kept++;
    await gone(h, name);
    const fresh = `bench-fresh-${i}`;
    t0 = performance.now();
    await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name: fresh }, spec: { runtime: { image: "blaxel/base-image:latest", memory: 1024 } } }), "create");
    await ok(fetch(`${h.url}/run/default/sandboxes/${fresh}/filesystem/${encodeURIComponent("/etc/hostname")}`, { headers: { authorization: `Bearer ${h.apiKey}` } }), "read fresh");
    create.push(performance.now() - t0);
    await gone(h, fresh);
  }
  await gone(h, "bench-fork-src");
  const f = dist(fork);
  const c = dist(create);
  out.rows.push({
    measure: "fork a running sandbox with a process → the fork answers",
    hangar: `p50 ${fmt(f.p50)} ms, p90 ${fmt(f.p90)} ms`,
    peer: `create → answers p50 ${fmt(c.p50)} ms`,
    ratio: `${fmt(f.p50 / c.p50)}×`,
    target: "p50 ≤ 300 ms",
    met: f.p50 <= 300,
  });
  out.notes.push(`fork: the counter process kept counting in ${kept}/${n} forks (processes restored with CRIU; 0 means files-only forks)`);
  out.log(`fork p50 ${fmt(f.p50)} ms (create ${fmt(c.p50)} ms), processes kept in ${kept}/${n}`);
}
