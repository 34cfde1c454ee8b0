// A user runs batch jobs: a job deployed from an image runs executions of many tasks through the
// unmodified SDK's blJob(...), each task a sandbox that reads its input from BL_EXECUTION_DATA_URL;
// failed tasks retry, slow ones time out, executions cancel, overrides apply, a full node answers
// 429 to allowQueue:false, a cron trigger fires, and a kill -9 of the server loses no task.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { CLI, REPO, type RunningHangar, api, startHangar, useSdkAgainst, zipFiles } from "./harness.js";

let h: RunningHangar;
let sdk: typeof import("@blaxel/core");

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_JOBS_MAX_TASKS: "12" } });
  useSdkAgainst(h);
  sdk = await import("@blaxel/core");
});

afterAll(async () => {
  await h?.dispose();
});

type Execution = { status: string; stats: Record<string, number>; tasks: Array<{ status: string; exitCode?: number; attempts: number; index: number; conditions: Array<{ reason: string }> }>; metadata: { id: string } };

async function createJob(name: string, script: string, runtime: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await api(h, "PUT", `/v0/jobs/${name}`, { metadata: { name }, spec: { runtime: { image: "hangar/base", command: ["sh", "-c", script], memory: 512, maxConcurrentTasks: 10, timeout: 60, ...runtime }, ...extra } });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function execution(job: string, id: string): Promise<Execution> {
  return (await (await api(h, "GET", `/v0/jobs/${job}/executions/${id}`)).json()) as Execution;
}

async function waitDone(job: string, id: string, ms = 60_000): Promise<Execution> {
  const deadline = Date.now() + ms;
  for (;;) {
    const e = await execution(job, id);
    if (["succeeded", "failed", "cancelled", "timeout"].includes(e.status)) return e;
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${e.status}: ${JSON.stringify(e.stats)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function logsOf(job: string, id: string): Promise<string> {
  const r = (await (await api(h, "GET", `/v0/jobs/${job}/executions/${id}/logs`)).json()) as { logs: Array<{ task: number; attempt: number; text: string }> };
  return r.logs.map((l) => `[task ${l.task} attempt ${l.attempt}] ${l.text}`).join("\n");
}

describe("running a batch job", () => {
  it("creates a job as createJob sends it and reads it back with its revision", async () => {
    await sdk.createJob({ body: { metadata: { name: "hello" }, spec: { runtime: { image: "hangar/base", memory: 512, maxRetries: 1, timeout: 30, maxConcurrentTasks: 4, envs: [{ name: "GREETING", value: "hi" }] } } as never }, throwOnError: true });
    const { data } = await sdk.getJob({ path: { jobId: "hello" }, throwOnError: true });
    const job = data as unknown as { status: string; spec: { runtime: Record<string, unknown>; revision: { active: string } }; metadata: { url: string } };
    expect(job.status).toBe("DEPLOYED");
    expect(job.spec.runtime).toMatchObject({ image: "hangar/base", memory: 512, maxRetries: 1, timeout: 30, maxConcurrentTasks: 4 });
    expect(job.metadata.url).toBe(`${h.url}/run/default/jobs/hello`);
    const revs = (await (await api(h, "GET", "/v0/jobs/hello/revisions")).json()) as Array<{ active: boolean }>;
    expect(revs).toHaveLength(1);
    expect(revs[0]!.active).toBe(true);
  });

  it("runs tasks through blJob: each task reads its input from the data URL, with its index, execution id and a workspace credential", async () => {
    // the task prints its own input (fetched as blStartJob does) and calls the API with its credential
    await createJob(
      "echo",
      `node -e '
const i = Number(process.env.TASK_INDEX);
fetch(process.env.BL_EXECUTION_DATA_URL).then((r) => r.json()).then(async (d) => {
  const me = await fetch(process.env.BL_API_URL + "/jobs/echo", { headers: { authorization: "Bearer " + process.env.BL_API_KEY, "x-blaxel-workspace": process.env.BL_WORKSPACE } });
  console.log(JSON.stringify({ input: d.tasks[i], index: i, exec: process.env.BL_EXECUTION_ID, api: me.status, greeting: process.env.GREETING, mem: process.env.MEMO }));
  process.exit(d.tasks[i].fail ? 3 : 0);
});'`,
      { envs: [{ name: "GREETING", value: "hello" }] },
    );
    const job = sdk.blJob("echo");
    const id = await job.run([{ name: "a" }, { name: "b" }, { name: "c" }], { env: { MEMO: "override" } });
    const done = (await job.waitForExecution(id, { interval: 300, maxWait: 60_000 })) as unknown as Execution;
    expect(done.status, await logsOf("echo", id)).toBe("succeeded");
    expect(done.stats).toMatchObject({ total: 3, success: 3, failure: 0 });
    expect(await job.getExecutionStatus(id)).toBe("succeeded");
    const logs = (await (await api(h, "GET", `/v0/jobs/echo/executions/${id}/logs?task=1`)).json()) as { logs: Array<{ text: string }> };
    const line = JSON.parse(logs.logs[0]!.text.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(line).toEqual({ input: { name: "b" }, index: 1, exec: id, api: 200, greeting: "hello", mem: "override" });
    // the same through /v0/observability/logs, as the console asks for a task's logs
    const obs = (await (await api(h, "GET", `/v0/observability/logs?resourceType=jobs&workloadIds=echo&executionId=${id}&taskId=${id}-2`)).json()) as Record<string, { logs: Array<{ message: string }> }>;
    expect(obs.echo!.logs.map((l) => l.message).join("\n")).toContain('[task 2 run 1] {"input":{"name":"c"}');
    // the data URL died with the execution
    const list = await job.listExecutions();
    expect(list.data.map((e) => (e as { metadata: { id: string } }).metadata.id)).toContain(id);
  });

  it("answers tasks at the platform endpoint but no other sandbox (the control plane stays out of their reach)", async () => {
    await createJob("where", "echo $BL_API_URL");
    const { executionId } = (await (await api(h, "POST", "/v0/jobs/where/executions", { tasks: [{}] })).json()) as { executionId: string };
    expect((await waitDone("where", executionId)).status).toBe("succeeded");
    const apiUrl = (await logsOf("where", executionId)).trim().split("\n").at(-1)!.replace(/^\[task 0 attempt 1\] /, "");
    expect(apiUrl).toMatch(/^http:\/\/10\.[\d.]+:\d+\/v0$/);
    const box = await sdk.SandboxInstance.create({ name: "not-a-task", memory: 512 });
    const r = await box.process.exec({ command: `node -e 'fetch("${apiUrl.replace(/\/v0$/, "")}/health").then((r) => console.log("status " + r.status), () => console.log("refused"))'`, waitForCompletion: true });
    // another sandbox's gateway is unreachable; at its own, the platform endpoint refuses what is no workload
    expect(r.logs?.trim()).toMatch(/^(refused|status 403)$/);
    await box.delete();
  }, 60_000);

  it("runs a job deployed from source whose image calls the SDK's blStartJob, which reads its task from the data URL", async () => {
    // the unmodified SDK, bundled into one file for the base image's Node
    const task = buildSync({
      stdin: { contents: `import { blStartJob } from "@blaxel/core";\nblStartJob(async (args) => { console.log("task " + process.env.TASK_INDEX + " got " + JSON.stringify(args)); if (args.fail) throw new Error("asked to fail"); });\n`, resolveDir: REPO, loader: "js" },
      bundle: true,
      platform: "node",
      target: "node18",
      format: "cjs",
      write: false,
      logLevel: "error",
    }).outputFiles[0]!.text;
    const res = await api(h, "PUT", "/v0/jobs/sdk-job?upload=true", { metadata: { name: "sdk-job" }, spec: { runtime: { memory: 512, maxRetries: 0 } } });
    expect(res.status, await res.clone().text()).toBe(200);
    const up = await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles({ Dockerfile: 'FROM hangar/base\nWORKDIR /job\nCOPY task.js .\nCMD ["node", "task.js"]\n', "task.js": task }) });
    expect(up.status).toBe(200);
    for (let i = 0; ; i++) {
      const j = (await (await api(h, "GET", "/v0/jobs/sdk-job")).json()) as { status: string; events: Array<{ message: string }> };
      if (j.status === "DEPLOYED") break;
      if (j.status === "FAILED" || i > 900) throw new Error(`the job is ${j.status}: ${j.events.at(-1)?.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const job = sdk.blJob("sdk-job");
    const id = await job.run([{ city: "Paris" }, { city: "Lyon", fail: true }]);
    const done = (await job.waitForExecution(id, { interval: 300, maxWait: 60_000 })) as unknown as Execution;
    expect(done.status).toBe("failed");
    expect(done.tasks.map((t) => [t.status, t.exitCode])).toEqual([["succeeded", 0], ["failed", 1]]);
    const logs = await logsOf("sdk-job", id);
    expect(logs).toContain('task 0 got {"city":"Paris"}');
    expect(logs).toContain("Job execution failed: Error: asked to fail");
  }, 240_000);

  it("runs 200 tasks at parallelism 10; tasks that fail are retried with backoff until they succeed", async () => {
    // about one run in six fails; 8 retries make a final failure vanishingly rare
    await createJob("wide", "n=$(od -An -N1 -tu1 /dev/urandom); echo task $TASK_INDEX roll $n; [ $n -ge 40 ]", { maxConcurrentTasks: 10, maxRetries: 8 });
    const started = Date.now();
    const res = await api(h, "POST", "/v0/jobs/wide/executions", { tasks: Array.from({ length: 200 }, (_, i) => ({ i })) });
    expect(res.status, await res.clone().text()).toBe(200);
    const { executionId } = (await res.json()) as { executionId: string };
    let peak = 0;
    const deadline = Date.now() + 120_000;
    let e: Execution;
    for (;;) {
      e = await execution("wide", executionId);
      peak = Math.max(peak, e.stats.running ?? 0);
      expect(e.stats.running ?? 0).toBeLessThanOrEqual(10);
      if (["succeeded", "failed"].includes(e.status) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(e.status, await logsOf("wide", executionId)).toBe("succeeded");
    expect(e.stats).toMatchObject({ total: 200, success: 200, failure: 0 });
    expect(e.stats.retried).toBeGreaterThan(0);
    expect(peak).toBeGreaterThanOrEqual(5);
    const retried = e.tasks.find((t) => t.attempts > 1)!;
    expect(retried.conditions.some((c) => c.reason === "NonZeroExitCode")).toBe(true);
    console.log(`200 tasks at parallelism 10: ${Date.now() - started} ms, ${e.stats.retried} retries, peak ${peak} running`);
  }, 150_000);

  it("kills a task at its timeout (status timeout) and cancels an execution mid-run (SIGTERM, then SIGKILL)", async () => {
    await createJob("slow", "echo started; trap 'echo got TERM; exit 143' TERM; sleep 30 & wait", { timeout: 2, maxRetries: 0 });
    const t = await api(h, "POST", "/v0/jobs/slow/executions", { tasks: [{}] });
    const timedOut = await waitDone("slow", ((await t.json()) as { executionId: string }).executionId, 30_000);
    expect(timedOut.status).toBe("timeout");
    expect(timedOut.tasks[0]!.conditions.at(-1)!.reason).toBe("DeadlineExceeded");

    await createJob("slow", "echo started; trap 'echo got TERM; exit 143' TERM; sleep 30 & wait", { timeout: 60, maxRetries: 2, maxConcurrentTasks: 2 });
    const job = sdk.blJob("slow");
    const id = await job.run([{}, {}, {}, {}]);
    for (let i = 0; i < 100 && (await execution("slow", id)).stats.running! < 2; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    await job.cancelExecution(id);
    const done = await waitDone("slow", id, 30_000);
    expect(done.status).toBe("cancelled");
    expect(done.stats).toMatchObject({ total: 4, cancelled: 4, success: 0 });
    const logs = await logsOf("slow", id);
    expect(logs).toContain("got TERM");
    // the data URL died with the execution
  }, 60_000);

  it("applies memory overrides up to the job's memory, and refuses more", async () => {
    await createJob("mem", "echo ok", { memory: 1024 });
    const res = await api(h, "POST", "/v0/jobs/mem/executions", { tasks: [{}], memory: 256, env: { SECRET_TOKEN: "abc" } });
    const { executionId } = (await res.json()) as { executionId: string };
    const e = (await waitDone("mem", executionId)) as Execution & { spec: { memoryOverride: number; envOverride: Record<string, string> } };
    expect(e.status, await logsOf("mem", executionId)).toBe("succeeded");
    // override values are masked in responses
    expect(e.spec).toMatchObject({ memoryOverride: 256, envOverride: { SECRET_TOKEN: "***" } });
    const over = await api(h, "POST", "/v0/jobs/mem/executions", { tasks: [{}], memory: 4096 });
    expect(over.status).toBe(400);
  });

  it("answers 429 to allowQueue:false when the node is full, and queues otherwise", async () => {
    await createJob("busy", "sleep 4", { maxConcurrentTasks: 12, maxRetries: 0 });
    const first = await api(h, "POST", "/v0/jobs/busy/executions", { tasks: Array.from({ length: 12 }, () => ({})) });
    expect(first.status).toBe(200);
    const refused = await api(h, "POST", "/v0/jobs/busy/executions", { tasks: [{}], allowQueue: false });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { message: string }).message).toContain("Maximum parallel executions limit reached");
    const queued = await api(h, "POST", "/v0/jobs/busy/executions", { tasks: [{}] });
    expect(queued.status).toBe(200);
    const q = (await queued.json()) as { executionId: string };
    expect((await execution("busy", q.executionId)).status).toBe("queued");
    await api(h, "DELETE", `/v0/jobs/busy/executions/${((await first.json()) as { executionId: string }).executionId}`);
    expect((await waitDone("busy", q.executionId, 30_000)).status).toBe("succeeded");
  }, 60_000);

  it("starts executions through the run plane as bl run job does", async () => {
    const res = await fetch(`${h.url}/run/default/jobs/hello/executions`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ tasks: [{ a: 1 }] }) });
    expect(res.status, await res.clone().text()).toBe(200);
    const { executionId } = (await res.json()) as { executionId: string };
    expect(executionId).toBeTruthy();
    const e = await waitDone("hello", executionId);
    // hangar/base names no command and the job none: the task fails clearly
    expect(e.status).toBe("failed");
    expect(await logsOf("hello", executionId)).toContain("names no command");
  });

  it("fires a cron trigger on time, once per slot", async () => {
    await createJob("tick", "echo tick $TASK_INDEX", {}, { triggers: [{ id: "every-2s", type: "cron", configuration: { schedule: "*/2 * * * * *", tasks: [{ a: 1 }] } }] });
    const deadline = Date.now() + 15_000;
    let list: Array<{ status: string; metadata: { id: string; createdAt: string } }> = [];
    while (Date.now() < deadline) {
      const page = (await (await api(h, "GET", "/v0/jobs/tick/executions")).json()) as { data: typeof list } | typeof list;
      list = Array.isArray(page) ? page : page.data;
      if (list.length >= 2) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(list.length).toBeGreaterThanOrEqual(2);
    // turned off: no more firings
    await createJob("tick", "echo tick $TASK_INDEX", {}, { triggers: [] });
    const slots = new Set(list.map((e) => e.metadata.createdAt.slice(0, 19)));
    expect(slots.size).toBe(list.length);
  }, 30_000);

  it("schedules processes in a sandbox with the SDK's sandbox.schedules (sleep and a seconds-level cron)", async () => {
    const sandbox = await sdk.SandboxInstance.create({ name: "sched-box", memory: 512 });
    const once = await sandbox.schedules.create({ type: "sleep", value: "1s", input: { command: "echo once >> /tmp/sched.log", name: "once", env: { TOKEN: "s3cret" } } });
    expect(once).toMatchObject({ type: "at", sandbox: "sched-box", input: { env: { TOKEN: "***" } } });
    const tick = await sandbox.schedules.create({ id: "tick", type: "cron", value: "*/2 * * * * *", input: { command: "echo tick >> /tmp/sched.log" } });
    expect(tick.id).toBe("tick");
    const deadline = Date.now() + 15_000;
    let runs: Array<{ scheduleId?: string; status?: string }> = [];
    while (Date.now() < deadline) {
      runs = (await sandbox.schedules.executions()).data;
      if (runs.filter((r) => r.scheduleId === "tick").length >= 2 && runs.some((r) => r.scheduleId === once.id)) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    await sandbox.schedules.delete("tick");
    expect(runs.filter((r) => r.scheduleId === once.id)).toHaveLength(1);
    expect(runs.filter((r) => r.scheduleId === "tick").length).toBeGreaterThanOrEqual(2);
    expect(runs.every((r) => r.status === "succeeded")).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const log = await sandbox.fs.read("/tmp/sched.log");
    expect(log).toContain("once");
    expect(log).toContain("tick");
    const all = (await (await api(h, "GET", "/v0/schedules")).json()) as { data: Array<{ id: string }> } | Array<{ id: string }>;
    expect((Array.isArray(all) ? all : all.data).map((x) => x.id)).toEqual([once.id]);
    expect((await api(h, "POST", "/v0/sandboxes/sched-box/schedules", { type: "cron", value: "nope", input: { command: "true" } })).status).toBe(400);
    expect((await api(h, "POST", "/v0/sandboxes/no-such-box/schedules", { type: "sleep", value: "1m", input: { command: "true" } })).status).toBe(404);
    await sandbox.delete();
  }, 40_000);

  it("refuses bad input with 4xx problem bodies", async () => {
    expect((await api(h, "POST", "/v0/jobs/nope/executions", { tasks: [{}] })).status).toBe(404);
    expect((await api(h, "POST", "/v0/jobs/hello/executions", { tasks: "x" })).status).toBe(400);
    expect((await api(h, "POST", "/v0/jobs/hello/executions", { tasks: [1, 2] })).status).toBe(400);
    expect((await api(h, "POST", "/v0/jobs/hello/executions", { tasks: Array.from({ length: 10_001 }, () => ({})) })).status).toBeGreaterThanOrEqual(400);
    expect((await api(h, "POST", "/v0/jobs/hello/executions", { tasks: [{}], env: { A: 1 } })).status).toBe(400);
    expect((await api(h, "PUT", "/v0/jobs/bad", { spec: { runtime: { image: "hangar/base", maxRetries: -1 } } })).status).toBe(400);
    expect((await api(h, "PUT", "/v0/jobs/bad", { spec: { runtime: { image: "hangar/base" }, triggers: [{ type: "cron", configuration: { schedule: "not cron" } }] } })).status).toBe(400);
    expect((await api(h, "GET", "/v0/jobs/hello/executions/nope")).status).toBe(404);
    expect((await fetch(`${h.url}/jobs-data/guess`)).status).toBe(404);
    const dup = await api(h, "POST", "/v0/jobs/hello/executions", { tasks: [{}], executionId: "fixed-1" });
    expect(dup.status).toBe(200);
    expect((await api(h, "POST", "/v0/jobs/hello/executions", { tasks: [{}], executionId: "fixed-1" })).status).toBe(409);
  });

  it("runs a job from the CLI with a batch file, waits with a progress bar, lists executions and prints a task's logs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hangar-jobs-cli-"));
    const batch = join(dir, "batch.json");
    writeFileSync(batch, JSON.stringify({ tasks: [{ n: 1 }, { n: 2 }] }));
    const hangar = (...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, HANGAR_CONFIG: join(dir, "config.json"), HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_WORKSPACE: "default" }, timeout: 60_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const run = hangar("run", "job", "echo", "-f", batch, "--wait");
    expect(run.code, run.err).toBe(0);
    const id = /execution (\S+) started/.exec(run.out)![1]!;
    expect(run.err).toContain("2/2 done, 0 failed");
    expect(hangar("get", "jobs").out).toMatch(/echo\s+DEPLOYED\s+hangar\/base/);
    expect(hangar("get", "executions", "echo").out).toContain(id);
    const logs = hangar("logs", "job", "echo", "--execution", id, "--task", "1");
    expect(logs.out).toContain('"input":{"n":2}');
    const cancel = hangar("cancel", "execution", "echo", id);
    expect(cancel.out).toContain("succeeded");
  }, 60_000);

  it("survives kill -9 of the server mid-execution: running tasks are adopted with their sandboxes, queued ones start after, none runs twice", async () => {
    // the CLI test above blocked this process in spawnSync for longer than the server's keep-alive:
    // let the pool see the connections the server closed meanwhile before the next fetch reuses one
    await new Promise((r) => setTimeout(r, 100));
    // each run appends to a file of its task in its sandbox: a second run of a task would count 2
    await createJob("durable", "echo x >> /tmp/run-$TASK_INDEX; sleep 3; echo runs=$(wc -l < /tmp/run-$TASK_INDEX)", { maxConcurrentTasks: 3, maxRetries: 0 });
    const res = await api(h, "POST", "/v0/jobs/durable/executions", { tasks: Array.from({ length: 7 }, (_, i) => ({ i })) });
    const { executionId } = (await res.json()) as { executionId: string };
    for (let i = 0; i < 100 && (await execution("durable", executionId)).stats.running! < 3; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    await h.kill9();
    h = await h.restart();
    const e = await waitDone("durable", executionId, 60_000);
    expect(e.status, await logsOf("durable", executionId)).toBe("succeeded");
    expect(e.stats).toMatchObject({ total: 7, success: 7, failure: 0, retried: 0 });
    for (const t of e.tasks) expect(t.attempts).toBe(1);
    const logs = (await (await api(h, "GET", `/v0/jobs/durable/executions/${executionId}/logs`)).json()) as { logs: Array<{ task: number; text: string }> };
    expect(logs.logs).toHaveLength(7);
    for (const l of logs.logs) expect(l.text.trim().split("\n").at(-1)).toBe("runs=1");
  }, 90_000);
});

