// Batch jobs: 1,000 tasks of `true` at parallelism 20 against the ideal of the same run (1000 / 20 ×
// the create → first command p50 of a plain sandbox, measured here too), and the queue's
// queued → running latency (a single-task execution's creation to its task's claim); then a real
// job image whose task is the unmodified SDK's blStartJob reading its input from the data URL.

import { buildSync } from "esbuild";
import { REPO, type RunningHangar, api, zipFiles } from "@hangar/testkit";
import { type Row, dist, fmt, timeEach } from "./stats.js";

const TASKS = Number(process.env.BENCH_JOB_TASKS ?? 1000);
const PARALLELISM = 20;

type Execution = { status: string; stats: { total: number; success: number; failure: number; running: number }; tasks: Array<{ metadata: { startedAt?: string } }>; metadata: { createdAt: string } };

async function ok(p: Promise<Response>, what: string): Promise<Response> {
  const r = await p;
  if (!r.ok) throw new Error(`${what}: HTTP ${r.status} ${await r.text()}`);
  return r;
}

async function waitDone(h: RunningHangar, job: string, id: string, pollMs: number): Promise<Execution> {
  for (;;) {
    const e = (await (await ok(api(h, "GET", `/v0/jobs/${job}/executions/${id}`), "get execution")).json()) as Execution;
    if (["succeeded", "failed", "cancelled", "timeout"].includes(e.status)) return e;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function benchJobs(h: RunningHangar, out: { rows: Row[]; log: (m: string) => void }): Promise<void> {
  out.log("jobs: create → first command p50 of plain sandboxes (the ideal's unit)");
  const create = dist(
    await timeEach(15, async (i) => {
      const name = `bench-job-unit-${i}`;
      await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name }, spec: { runtime: { memory: 512 } } }), "create");
      await ok(api(h, "POST", `/run/default/sandboxes/${name}/process`, { command: "true", waitForCompletion: true }), "exec");
      await api(h, "DELETE", `/v0/sandboxes/${name}`);
    }),
  );
  await ok(api(h, "PUT", "/v0/jobs/bench-true", { metadata: { name: "bench-true" }, spec: { runtime: { image: "hangar/base", command: ["true"], memory: 512, maxConcurrentTasks: PARALLELISM, maxRetries: 0 } } }), "create job");

  out.log("jobs: queued → running latency, 30 single-task executions");
  const latency: number[] = [];
  for (let i = 0; i < 30; i++) {
    const { executionId } = (await (await ok(api(h, "POST", "/v0/jobs/bench-true/executions", { tasks: [{}] }), "execution")).json()) as { executionId: string };
    const e = await waitDone(h, "bench-true", executionId, 20);
    latency.push(Date.parse(e.tasks[0]!.metadata.startedAt!) - Date.parse(e.metadata.createdAt));
  }
  const lat = dist(latency);

  out.log(`jobs: ${TASKS} tasks of true at parallelism ${PARALLELISM}`);
  const t0 = performance.now();
  const { executionId } = (await (await ok(api(h, "POST", "/v0/jobs/bench-true/executions", { tasks: Array.from({ length: TASKS }, (_, i) => ({ i })) }), "execution")).json()) as { executionId: string };
  const e = await waitDone(h, "bench-true", executionId, 250);
  const wall = performance.now() - t0;
  const ideal = (TASKS / PARALLELISM) * create.p50;
  const lost = e.stats.total - e.stats.success - e.stats.failure;
  out.rows.push({
    measure: `job: ${TASKS} tasks of \`true\`, parallelism ${PARALLELISM}`,
    hangar: `${fmt(wall / 1000)} s (${e.stats.success} ok, ${e.stats.failure} failed, ${lost} lost)`,
    peer: `ideal ${fmt(ideal / 1000)} s (create→first command p50 ${fmt(create.p50)} ms)`,
    ratio: `${(wall / ideal).toFixed(2)}× ideal`,
    target: "≤ 1.3× ideal, 0 lost",
    met: wall <= 1.3 * ideal && e.stats.success === TASKS,
  });
  out.rows.push({ measure: "job: queued → running (claim) latency", hangar: `p50 ${fmt(lat.p50)} ms, p90 ${fmt(lat.p90)} ms`, peer: "", ratio: "", target: "p50 ≤ 60 ms", met: lat.p50 <= 60 });

  out.log("jobs: a job image with blStartJob (built from source), 200 tasks at parallelism 20");
  const task = buildSync({
    stdin: { contents: `import { blStartJob } from "@blaxel/core";\nblStartJob(async (args) => { if (typeof args.i !== "number") throw new Error("no input"); });\n`, resolveDir: REPO, loader: "js" },
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    write: false,
    logLevel: "error",
  }).outputFiles[0]!.text;
  const res = await ok(api(h, "PUT", "/v0/jobs/bench-sdk?upload=true", { metadata: { name: "bench-sdk" }, spec: { runtime: { memory: 512, maxConcurrentTasks: PARALLELISM, maxRetries: 0 } } }), "create job");
  await ok(fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", body: zipFiles({ Dockerfile: 'FROM hangar/base\nWORKDIR /job\nCOPY task.js .\nCMD ["node", "task.js"]\n', "task.js": task }) }), "upload");
  for (let i = 0; ; i++) {
    const j = (await (await api(h, "GET", "/v0/jobs/bench-sdk")).json()) as { status: string; events: Array<{ message: string }> };
    if (j.status === "DEPLOYED") break;
    if (j.status === "FAILED" || i > 1200) throw new Error(`the bench job is ${j.status}: ${j.events.at(-1)?.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const n = 200;
  const s0 = performance.now();
  const sdkRun = (await (await ok(api(h, "POST", "/v0/jobs/bench-sdk/executions", { tasks: Array.from({ length: n }, (_, i) => ({ i })) }), "execution")).json()) as { executionId: string };
  const se = await waitDone(h, "bench-sdk", sdkRun.executionId, 250);
  const sdkWall = performance.now() - s0;
  out.rows.push({
    measure: `job: ${n} tasks of blStartJob (SDK image), parallelism ${PARALLELISM}`,
    hangar: `${fmt(sdkWall / 1000)} s (${se.stats.success} ok, ${se.stats.failure} failed)`,
    peer: "",
    ratio: `${fmt(sdkWall / n)} ms per task`,
    target: "0 lost",
    met: se.stats.success === n,
  });
}
