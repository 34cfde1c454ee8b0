// Measurements of the linux driver on this machine (root). Run:
//   node --conditions=hangar-source --import tsx packages/runtime/src/linux/bench.ts [--n 30] [--capacity 300] [--no-userns] [--json]
// Uses its own run/state dirs, cgroup parent, netns prefix, nft table and 10.90.0.0/16, and
// removes everything it created at the end (also after a crash, on the next run).

import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import type { SandboxHandle } from "../driver.js";
import type { ImageStore } from "../images/types.js";
import { LocalImageStore, DEFAULT_IMAGE_CACHE_DIR } from "../images/store.js";
import { BASE_REF } from "../images/refs.js";
import { LinuxDriver, type LinuxDriverOptions } from "./driver.js";
import { agentRun } from "./testkit.js";
import { readStats } from "./cgroups.js";
import { sleep } from "./proc.js";

export interface Dist {
  n: number;
  p50: number;
  p90: number;
  min: number;
  max: number;
}

export interface LinuxBenchResult {
  createToAgentPool: Dist;
  createToAgentNoPool: Dist;
  createToFirstTruePool: Dist;
  createToFirstTrueNoPool: Dist;
  execTrue: Dist;
  spawnTrueHost: Dist;
  destroy: Dist;
  freeze: Dist;
  thaw: Dist;
  thawToFirstByte: Dist;
  gvisor: { createToAgent: Dist; execTrue: Dist; destroy: Dist } | null;
  idle: { sandboxes: number; cgroupMemoryKiB: number; crunParentPssKiB: number; hostMemoryKiB: number };
  capacity: { attempted: number; running: number; error: string | null; hostMemoryUsedMiB: number; createP50AtEnd: number };
}

function dist(xs: number[]): Dist {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => Number((s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN).toFixed(2));
  return { n: s.length, p50: q(0.5), p90: q(0.9), min: q(0), max: q(0.999999) };
}

function memAvailableKiB(): number {
  const m = /MemAvailable:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"));
  return Number(m?.[1] ?? 0);
}

function pssKiB(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

let usernsOff = false;

function options(poolSize: number, images: ImageStore): LinuxDriverOptions {
  return {
    ...(usernsOff ? { userns: false as const } : {}),
    stateDir: "/var/tmp/hangar-bench",
    runDir: "/run/hangar-bench",
    launcherDir: "/var/tmp/hangar-bench/bin",
    images,
    cgroupParent: "hangar-bench",
    network: { prefix: "bn", table: "hangar_bench", cidr: "10.90.0.0/16", poolSize, refillDelayMs: 20 },
  };
}

const spec = (id: string, runtimeClass: "default" | "gvisor" = "default") => ({
  id,
  name: `bench-${id}`,
  workspace: "bench",
  image: BASE_REF,
  memoryMb: 256,
  envs: {},
  ports: [],
  runtimeClass,
});

async function fresh(poolSize: number, images: ImageStore): Promise<LinuxDriver> {
  await new LinuxDriver(options(poolSize, images)).purge();
  const d = new LinuxDriver(options(poolSize, images));
  await d.preflight();
  await d.network?.idle();
  return d;
}

/** create → agent connected, and create → first `true` done, for n sandboxes one after another. */
async function createSeries(d: LinuxDriver, n: number, tag: string): Promise<{ toAgent: number[]; toTrue: number[]; destroy: number[] }> {
  const toAgent: number[] = [];
  const toTrue: number[] = [];
  const destroy: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${tag}${i}`;
    const t0 = performance.now();
    const h = await d.create(spec(id));
    toAgent.push(performance.now() - t0);
    const r = await agentRun(h, ["true"]);
    toTrue.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(`true failed in ${id}`);
    await sleep(60); // steady state: the pool refills between creates
    const t1 = performance.now();
    await d.destroy(id);
    destroy.push(performance.now() - t1);
  }
  return { toAgent, toTrue, destroy };
}

export async function runLinuxBench(o: { n?: number; capacity?: number; userns?: boolean; log?: (s: string) => void } = {}): Promise<LinuxBenchResult> {
  const n = o.n ?? 30;
  usernsOff = o.userns === false;
  const log = o.log ?? (() => {});
  const images = new LocalImageStore({ dir: DEFAULT_IMAGE_CACHE_DIR });
  await images.resolve(BASE_REF, (l) => log(`image: ${l}`));

  // without the pool: every create builds its netns + veth
  let d = await fresh(0, images);
  await createSeries(d, 3, "w"); // warm-up
  const noPool = await createSeries(d, n, "n");
  await d.uninstall();
  log(`no pool: create→agent p50 ${dist(noPool.toAgent).p50} ms`);

  d = await fresh(4, images);
  await createSeries(d, 3, "w");
  const pool = await createSeries(d, n, "p");
  log(`pool: create→agent p50 ${dist(pool.toAgent).p50} ms`);

  // exec round trip, freeze/thaw, resume → first byte
  const h = await d.create(spec("x0"));
  const execs: number[] = [];
  const host: number[] = [];
  for (let i = 0; i < 50; i++) {
    let t = performance.now();
    await agentRun(h, ["true"]);
    execs.push(performance.now() - t);
    t = performance.now();
    spawnSync("true");
    host.push(performance.now() - t);
  }
  const fr: number[] = [];
  const th: number[] = [];
  const fb: number[] = [];
  await agentRun(h, ["sh", "-c", "nohup sleep 100000 >/dev/null 2>&1 &"]);
  for (let i = 0; i < 30; i++) {
    let t = performance.now();
    await d.freeze("x0");
    fr.push(performance.now() - t);
    await sleep(20);
    t = performance.now();
    await d.thaw("x0");
    th.push(performance.now() - t);
    await h.agent.stat("/");
    fb.push(performance.now() - t);
  }
  await d.destroy("x0");

  // gVisor (runsc), when installed
  let gvisor: LinuxBenchResult["gvisor"] = null;
  if (d.gvisor) {
    const ca: number[] = [];
    const ex: number[] = [];
    const de: number[] = [];
    for (let i = 0; i < 10; i++) {
      let t = performance.now();
      const g = await d.create(spec(`g${i}`, "gvisor"));
      ca.push(performance.now() - t);
      for (let j = 0; j < 5; j++) {
        t = performance.now();
        await agentRun(g, ["true"]);
        ex.push(performance.now() - t);
      }
      t = performance.now();
      await d.destroy(g.id);
      de.push(performance.now() - t);
    }
    gvisor = { createToAgent: dist(ca), execTrue: dist(ex), destroy: dist(de) };
    log(`gvisor: create→agent p50 ${gvisor.createToAgent.p50} ms`);
  }

  // idle footprint and capacity: keep creating until `capacity` or the first failure
  const cap = o.capacity ?? 300;
  const before = memAvailableKiB();
  const handles: SandboxHandle[] = [];
  const times: number[] = [];
  let error: string | null = null;
  for (let i = 0; i < cap; i++) {
    try {
      const t = performance.now();
      handles.push(await d.create(spec(`c${i}`)));
      times.push(performance.now() - t);
    } catch (e) {
      error = (e as Error).message.slice(0, 300);
      break;
    }
    if (i % 50 === 49) log(`capacity: ${i + 1} sandboxes`);
  }
  await sleep(2000);
  const after = memAvailableKiB();
  let cgroupKiB = 0;
  let crunKiB = 0;
  for (const x of handles) {
    cgroupKiB += (await readStats(d.cgroupPath(x.id))).memoryBytes / 1024;
    const pid = await d.hostPid(x.id);
    const ppid = pid ? Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]) : 0;
    crunKiB += ppid ? pssKiB(ppid) : 0;
  }
  const alive = (await Promise.all(handles.map((x) => agentRun(x, ["true"]).then((r) => r.code === 0, () => false)))).filter(Boolean).length;
  const k = Math.max(1, handles.length);
  const result: LinuxBenchResult = {
    createToAgentPool: dist(pool.toAgent),
    createToAgentNoPool: dist(noPool.toAgent),
    createToFirstTruePool: dist(pool.toTrue),
    createToFirstTrueNoPool: dist(noPool.toTrue),
    execTrue: dist(execs),
    spawnTrueHost: dist(host),
    destroy: dist(pool.destroy),
    freeze: dist(fr),
    thaw: dist(th),
    thawToFirstByte: dist(fb),
    gvisor,
    idle: {
      sandboxes: handles.length,
      cgroupMemoryKiB: Math.round(cgroupKiB / k),
      crunParentPssKiB: Math.round(crunKiB / k),
      hostMemoryKiB: Math.round((before - after) / k),
    },
    capacity: {
      attempted: cap,
      running: alive,
      error,
      hostMemoryUsedMiB: Math.round((before - after) / 1024),
      createP50AtEnd: dist(times.slice(-30)).p50,
    },
  };
  const t = performance.now();
  for (const x of handles) await d.destroy(x.id);
  log(`destroyed ${handles.length} in ${Math.round(performance.now() - t)} ms`);
  await d.uninstall();
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const r = await runLinuxBench({ n: arg("--n"), capacity: arg("--capacity"), userns: !process.argv.includes("--no-userns"), log: (s) => console.error(s) });
  if (process.argv.includes("--json")) console.log(JSON.stringify(r, null, 2));
  else {
    for (const [k, v] of Object.entries(r)) console.log(k.padEnd(26), JSON.stringify(v));
  }
}
