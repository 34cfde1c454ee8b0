// The spec of a batch job as a user sends it (Blaxel's Job.spec): validated, defaults filled. Only
// what changes how a task runs (image, command, memory, envs) makes a new revision; timeout,
// retries and parallelism are read when an execution is created.

import { HangarError, fieldError as fail, isObject as isObj, intField as intIn } from "@hangar/common";
import { type EnvSpec, normalizeEnvs, normalizePorts } from "@hangar/control-plane";
import type { PortSpec } from "@hangar/control-plane";
import { Cron } from "croner";

export const JOB_DEFAULT_MEMORY_MB = 1024;
export const JOB_DEFAULT_TIMEOUT_S = 900;
export const JOB_DEFAULT_CONCURRENCY = 10;
export const JOB_MAX_CONCURRENCY = 1000;
export const JOB_MAX_RETRIES = 10;
/** Tasks per execution at most. */
export const MAX_TASKS = 10_000;

export interface JobTrigger {
  id: string;
  type: "cron" | "schedule" | "http";
  enabled: boolean;
  configuration: { schedule?: string; timezone?: string; tasks?: Array<Record<string, unknown>>; [k: string]: unknown };
}

export interface JobRuntime {
  image?: string;
  /** Overrides the image's ENTRYPOINT (Blaxel's runtime.command). */
  command?: string[];
  /** Overrides the image's CMD. */
  args?: string[];
  memory: number;
  envs?: EnvSpec[];
  ports?: PortSpec[];
  /** Seconds a task may run; 0 = no limit. */
  timeout: number;
  maxRetries: number;
  maxConcurrentTasks: number;
  generation?: string;
}

export interface JobSpecDoc {
  enabled: boolean;
  region?: string;
  runtime: JobRuntime;
  triggers: JobTrigger[];
  policies?: string[];
  revision?: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function strings(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) fail(field, "an array of strings");
  return v as string[];
}

export function normalizeJobSpec(raw: unknown): JobSpecDoc {
  if (raw !== undefined && !isObj(raw)) fail("spec", "must be an object");
  const spec = (raw ?? {}) as Json;
  const rt = spec.runtime ?? {};
  if (!isObj(rt)) fail("spec.runtime", "must be an object");
  if (rt.image !== undefined && (typeof rt.image !== "string" || !rt.image.trim())) fail("spec.runtime.image", "a non-empty image reference");
  const runtime: JobRuntime = {
    ...(typeof rt.image === "string" ? { image: rt.image.trim() } : {}),
    memory: intIn(rt.memory, "spec.runtime.memory", 128, 65_536, JOB_DEFAULT_MEMORY_MB),
    timeout: intIn(rt.timeout, "spec.runtime.timeout", 0, 86_400, JOB_DEFAULT_TIMEOUT_S),
    maxRetries: intIn(rt.maxRetries, "spec.runtime.maxRetries", 0, JOB_MAX_RETRIES, 0),
    maxConcurrentTasks: intIn(rt.maxConcurrentTasks, "spec.runtime.maxConcurrentTasks", 1, JOB_MAX_CONCURRENCY, JOB_DEFAULT_CONCURRENCY),
  };
  const command = strings(rt.command, "spec.runtime.command");
  if (command?.length) runtime.command = command;
  const args = strings(rt.args, "spec.runtime.args");
  if (args?.length) runtime.args = args;
  const envs = normalizeEnvs(rt.envs);
  if (envs) runtime.envs = envs;
  const ports = Array.isArray(rt.ports) ? normalizePorts(rt.ports.map((p) => (isObj(p) && p.protocol === undefined ? { ...p, protocol: "HTTP" } : p))) : normalizePorts(rt.ports);
  if (ports?.length) runtime.ports = ports;
  if (typeof rt.generation === "string") runtime.generation = rt.generation;
  if (spec.enabled !== undefined && typeof spec.enabled !== "boolean") fail("spec.enabled", "true or false");
  const out: JobSpecDoc = { enabled: spec.enabled !== false, runtime, triggers: normalizeTriggers(spec.triggers) };
  if (typeof spec.region === "string") out.region = spec.region;
  if (Array.isArray(spec.policies)) out.policies = spec.policies.map(String);
  if (isObj(spec.revision)) out.revision = spec.revision;
  return out;
}

/** Validates task inputs: an array of objects. */
export function normalizeTasks(raw: unknown, field = "tasks"): Array<Record<string, unknown>> {
  if (raw === undefined || raw === null) return [{}];
  if (!Array.isArray(raw)) fail(field, "an array of objects");
  if (raw.length > MAX_TASKS) fail(field, `at most ${MAX_TASKS} tasks per execution`);
  raw.forEach((t, i) => {
    if (!isObj(t)) fail(`${field}[${i}]`, "must be an object");
  });
  return raw.length ? (raw as Array<Record<string, unknown>>) : [{}];
}

function normalizeTriggers(raw: unknown): JobTrigger[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) fail("spec.triggers", "must be an array");
  const seen = new Set<string>();
  return raw.map((t, i) => {
    const f = `spec.triggers[${i}]`;
    if (!isObj(t)) fail(f, "must be an object {type, configuration?}");
    if (t.type !== "cron" && t.type !== "schedule" && t.type !== "http") fail(`${f}.type`, "cron, schedule or http");
    const c = t.configuration === undefined ? {} : t.configuration;
    if (!isObj(c)) fail(`${f}.configuration`, "must be an object");
    const conf: JobTrigger["configuration"] = { ...c };
    if (t.type !== "http") {
      if (typeof c.schedule !== "string" || !c.schedule.trim()) fail(`${f}.configuration.schedule`, "a cron expression such as '0 * * * *'");
      if (c.timezone !== undefined && typeof c.timezone !== "string") fail(`${f}.configuration.timezone`, "an IANA time zone such as 'Europe/Paris'");
      try {
        new Cron(c.schedule, { paused: true, ...(typeof c.timezone === "string" ? { timezone: c.timezone } : {}) }).stop();
      } catch (e) {
        fail(`${f}.configuration.schedule`, `not a valid cron expression (${e instanceof Error ? e.message : String(e)})`);
      }
      if (c.tasks !== undefined) conf.tasks = normalizeTasks(c.tasks, `${f}.configuration.tasks`);
    }
    let id = typeof t.id === "string" && t.id ? t.id : `${t.type}-${i}`;
    while (seen.has(id)) id = `${id}-${i}`;
    seen.add(id);
    return { id, type: t.type, enabled: t.enabled !== false, configuration: conf };
  });
}

/** What a revision runs: a change here makes a new revision. */
export function jobRevisionKey(rt: JobRuntime): string {
  return JSON.stringify([rt.image ?? "", rt.command ?? [], rt.args ?? [], rt.memory, (rt.envs ?? []).map((e) => [e.name, e.value])]);
}
