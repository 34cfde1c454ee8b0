// A user runs batch jobs: a job deployed from an image runs executions of many tasks through the
// unmodified SDK's blJob(...), each task a sandbox that reads its input from BL_EXECUTION_DATA_URL;
// failed tasks retry, slow ones time out, executions cancel, overrides apply, a full node answers
// 429 to allowQueue:false, a cron trigger fires, and a kill -9 of the server loses no task.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

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
    // the data URL died with the execution
    const list = await job.listExecutions();
    expect(list.data.map((e) => (e as { metadata: { id: string } }).metadata.id)).toContain(id);
  });
});
