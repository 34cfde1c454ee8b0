// The jobs plane over a real store: executions and their tasks, claims within the per-execution and
// node-wide caps, leases taken over after a crash, and cron slots that start once however many
// schedulers tick. No task runs here (the worker is not started); the e2e test runs them.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TestStore, openTestStore } from "@hangar/store/testing";
import { JobScheduler } from "./scheduler.js";
import { JobService, type TaskPort } from "./job-service.js";
import { StoreTaskQueue } from "./queue.js";

let t: TestStore;
let jobs: JobService;
const revoked: string[] = [];

/** The node as far as these tests need it: a name (nothing is started). */
const node: TaskPort = {
  nodeName: "n1",
  start: async () => {},
  destroy: async () => {},
  has: () => false,
  run: async () => ({ status: "completed", exitCode: 0, logs: "" }),
  stop: async () => {},
  hostUrl: () => "http://10.0.0.1:1",
};

beforeEach(async () => {
  t = await openTestStore();
  let n = 0;
  jobs = new JobService({ store: t.store, tasks: node, secrets: t.secrets, nodeCap: 5, credentials: { issue: async () => ({ id: `k${++n}`, key: `key${n}` }), revoke: async (id) => void revoked.push(id) } });
});

afterEach(async () => {
  await jobs.close();
  await t.close();
});

const spec = (runtime: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({ runtime: { image: "hangar/base", command: ["true"], ...runtime }, ...extra });

describe("jobs over the store", () => {
  it("claims at most maxConcurrentTasks per execution and the node cap overall, oldest execution first", async () => {
    await jobs.apply(t.workspace, { metadata: { name: "a" }, spec: spec({ maxConcurrentTasks: 3 }) });
    const e1 = await jobs.createExecution(t.workspace, "a", { tasks: Array.from({ length: 10 }, () => ({})) });
    const e2 = await jobs.createExecution(t.workspace, "a", { tasks: Array.from({ length: 10 }, () => ({})) });
    const q = new StoreTaskQueue(t.store);
    let id = 0;
    const claimed = await q.claim("w1", "n1", 5, 30_000, () => `sb${++id}`);
    expect(claimed.filter((c) => c.executionId === e1.executionId)).toHaveLength(3);
    expect(claimed.filter((c) => c.executionId === e2.executionId)).toHaveLength(2);
    expect(await q.claim("w1", "n1", 5, 30_000, () => `sb${++id}`)).toHaveLength(0);
    expect(new Set(claimed.map((c) => c.sandboxId)).size).toBe(5);
    expect((await t.store.jobs.getExecution(e1.executionId))!.status).toBe("running");
  });

  it("lets another worker take over running tasks only once their lease ran out", async () => {
    await jobs.apply(t.workspace, { metadata: { name: "a" }, spec: spec() });
    await jobs.createExecution(t.workspace, "a", { tasks: [{}, {}] });
    const q = new StoreTaskQueue(t.store);
    await q.claim("w1", "n1", 5, 50, () => Math.random().toString(36).slice(2));
    expect(await q.takeOver("n1", "w2", 30_000, false)).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 80));
    expect(await q.takeOver("n1", "w2", 30_000, false)).toHaveLength(2);
  });

  it("cancels: pending tasks never start, the execution ends cancelled and its credential is revoked", async () => {
    await jobs.apply(t.workspace, { metadata: { name: "a" }, spec: spec() });
    const e = await jobs.createExecution(t.workspace, "a", { tasks: [{}, {}, {}] });
    const done = await jobs.cancel(t.workspace, "a", e.executionId);
    expect(done.status).toBe("cancelled");
    expect(await jobs.dataFor("anything")).toBeNull();
    const view = (await jobs.executionView(done, t.workspace)) as { stats: Record<string, number> };
    expect(view.stats).toMatchObject({ total: 3, cancelled: 3 });
    expect(revoked).toContain(done.apiKeyId);
  });

  it("refuses an execution of a disabled job, an override above the job's memory, and malformed tasks", async () => {
    await jobs.apply(t.workspace, { metadata: { name: "a" }, spec: spec({ memory: 512 }) });
    await expect(jobs.createExecution(t.workspace, "a", { tasks: [{}], memory: 1024 })).rejects.toMatchObject({ code: "validation_failed" });
    await expect(jobs.createExecution(t.workspace, "a", { tasks: [[]] })).rejects.toMatchObject({ code: "validation_failed" });
    await jobs.apply(t.workspace, { metadata: { name: "a" }, spec: spec({ memory: 512 }, { enabled: false }) });
    await expect(jobs.createExecution(t.workspace, "a", { tasks: [{}] })).rejects.toMatchObject({ code: "conflict" });
  });

  it("starts a cron slot once however many schedulers tick, from the next slot after the trigger was set", async () => {
    await jobs.apply(t.workspace, { metadata: { name: "c" }, spec: spec({}, { triggers: [{ id: "s", type: "cron", configuration: { schedule: "*/10 * * * * *", timezone: "Europe/Paris", tasks: [{ x: 1 }, { x: 2 }] } }] }) });
    const q = new StoreTaskQueue(t.store);
    const a = new JobScheduler({ store: t.store, jobs, queue: q });
    const b = new JobScheduler({ store: t.store, jobs, queue: q });
    const base = Date.now();
    // nothing is due right after the trigger was set
    await Promise.all([a.tick(new Date(base)), b.tick(new Date(base))]);
    const list = async () => (await t.store.jobs.listExecutions((await jobs.get(t.workspace, "c")).id, { sort: "createdAt:desc", limit: 100 })).items;
    expect(await list()).toHaveLength(0);
    // 25 s later: two or three slots were due; missed ones collapse into one execution
    await Promise.all([a.tick(new Date(base + 25_000)), b.tick(new Date(base + 25_000)), a.tick(new Date(base + 25_000))]);
    expect(await list()).toHaveLength(1);
    await Promise.all([a.tick(new Date(base + 35_000)), b.tick(new Date(base + 35_000))]);
    const all = await list();
    expect(all).toHaveLength(2);
    expect(all[0]!.tasks).toEqual([{ x: 1 }, { x: 2 }]);
    expect(all[0]!.origin).toBe("cron:s");
  });
});
