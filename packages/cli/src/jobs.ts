// Batch jobs from the CLI: list jobs and executions, run an execution from a batch file (with a
// progress bar of tasks done and failed), cancel one, print its tasks' logs.

import { readFileSync } from "node:fs";
import { CliError, type HangarClient } from "./client.js";

type Output = "table" | "json" | "yaml";
type Printer = (value: unknown, output: Output, table: () => string[][]) => void;

interface JobJson {
  metadata: { name: string; createdAt?: string };
  spec: { runtime?: { image?: string; memory?: number; maxConcurrentTasks?: number; maxRetries?: number; timeout?: number }; triggers?: Array<{ type: string; configuration?: { schedule?: string } }> };
  status?: string;
}
interface ExecutionJson {
  metadata: { id: string; createdAt?: string; completedAt?: string };
  status: string;
  stats: { total: number; success: number; failure: number; running: number; cancelled: number; retried: number };
}

const e = encodeURIComponent;

async function all<T>(c: HangarClient, path: string): Promise<T[]> {
  const items: T[] = [];
  let cursor = "";
  do {
    const page = await c.api<{ data: T[]; meta: { nextCursor?: string } } | T[]>("GET", `${path}${path.includes("?") ? "&" : "?"}limit=200${cursor ? `&cursor=${e(cursor)}` : ""}`);
    if (Array.isArray(page)) return page;
    items.push(...page.data);
    cursor = page.meta.nextCursor ?? "";
  } while (cursor);
  return items;
}

export async function getJobs(c: HangarClient, name: string | undefined, output: Output, print: Printer, age: (iso?: string) => string): Promise<void> {
  const items = name ? [await c.api<JobJson>("GET", `/jobs/${e(name)}`)] : await all<JobJson>(c, "/jobs");
  print(name ? items[0] : items, output, () => [
    ["NAME", "STATUS", "IMAGE", "MEMORY", "PARALLELISM", "RETRIES", "TIMEOUT", "SCHEDULE", "AGE"],
    ...items.map((j) => [
      j.metadata.name,
      j.status ?? "",
      j.spec.runtime?.image ?? "",
      `${j.spec.runtime?.memory ?? ""}MB`,
      String(j.spec.runtime?.maxConcurrentTasks ?? ""),
      String(j.spec.runtime?.maxRetries ?? ""),
      `${j.spec.runtime?.timeout ?? ""}s`,
      (j.spec.triggers ?? []).map((t) => t.configuration?.schedule).filter(Boolean).join(", "),
      age(j.metadata.createdAt),
    ]),
  ]);
}

export async function getExecutions(c: HangarClient, job: string | undefined, id: string | undefined, output: Output, print: Printer, age: (iso?: string) => string): Promise<void> {
  if (!job) throw new CliError("name the job: hangar get executions JOB [EXECUTION]");
  const items = id ? [await c.api<ExecutionJson>("GET", `/jobs/${e(job)}/executions/${e(id)}`)] : await all<ExecutionJson>(c, `/jobs/${e(job)}/executions`);
  print(id ? items[0] : items, output, () => [
    ["ID", "STATUS", "TASKS", "SUCCEEDED", "FAILED", "RUNNING", "CANCELLED", "RETRIED", "AGE"],
    ...items.map((x) => [x.metadata.id, x.status, String(x.stats.total), String(x.stats.success), String(x.stats.failure), String(x.stats.running), String(x.stats.cancelled), String(x.stats.retried), age(x.metadata.createdAt)]),
  ]);
}

/** `hangar run job X -f batch.json [--wait]`: the file is {"tasks": [...]} or a bare array of tasks. */
export async function runJob(c: HangarClient, job: string, o: { file?: string; data?: string; wait?: boolean; env?: string[]; memory?: string }): Promise<void> {
  const raw = o.file ? readFileSync(o.file === "-" ? 0 : o.file, "utf8") : (o.data ?? '{"tasks":[{}]}');
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    throw new CliError(`the batch is not JSON: ${(err as Error).message}`);
  }
  const body: Record<string, unknown> = Array.isArray(doc) ? { tasks: doc } : (doc as Record<string, unknown>);
  if (o.env?.length) body.env = Object.fromEntries(o.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  if (o.memory) body.memory = Number(o.memory);
  const { executionId } = await c.api<{ executionId: string }>("POST", `/jobs/${e(job)}/executions`, body);
  process.stdout.write(`execution ${executionId} started\n`);
  if (!o.wait) return;
  const tty = process.stderr.isTTY;
  for (;;) {
    const x = await c.api<ExecutionJson>("GET", `/jobs/${e(job)}/executions/${e(executionId)}`);
    const s = x.stats;
    const done = s.success + s.failure + s.cancelled;
    const width = 30;
    const filled = s.total ? Math.round((done / s.total) * width) : width;
    const line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${s.total} done, ${s.failure} failed, ${s.running} running, ${s.retried} retried (${x.status})`;
    if (tty) process.stderr.write(`\r${line}`);
    if (["succeeded", "failed", "cancelled", "timeout"].includes(x.status)) {
      process.stderr.write(tty ? "\n" : `${line}\n`);
      if (x.status !== "succeeded") throw new CliError(`execution ${executionId} ${x.status}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function cancelExecution(c: HangarClient, job: string, id: string): Promise<void> {
  const x = await c.api<ExecutionJson>("DELETE", `/jobs/${e(job)}/executions/${e(id)}`);
  process.stdout.write(`execution ${id} ${x.status}\n`);
}

/** Prints the kept output of an execution's tasks; -f repeats until the execution ends. */
export async function jobLogs(c: HangarClient, job: string, execution: string, o: { task?: string; follow?: boolean }): Promise<void> {
  const seen = new Set<string>();
  for (;;) {
    const q = o.task !== undefined ? `?task=${Number(o.task)}` : "";
    const { logs } = await c.api<{ logs: Array<{ task: number; attempt: number; time: string; text: string }> }>("GET", `/jobs/${e(job)}/executions/${e(execution)}/logs${q}`);
    for (const l of logs) {
      const key = `${l.task}/${l.attempt}/${l.time}`;
      if (seen.has(key)) continue;
      seen.add(key);
      process.stdout.write(`--- task ${l.task}, run ${l.attempt} (${l.time})\n${l.text}${l.text.endsWith("\n") ? "" : "\n"}`);
    }
    if (!o.follow) return;
    const x = await c.api<ExecutionJson>("GET", `/jobs/${e(job)}/executions/${e(execution)}`);
    if (["succeeded", "failed", "cancelled", "timeout"].includes(x.status)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
