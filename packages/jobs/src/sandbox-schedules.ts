// Sandbox schedules (SDK `sandbox.schedules`): a process started in a sandbox on a cron expression,
// at an RFC 3339 time, or after a delay ("sleep", resolved to "at" when created). They fire on the
// jobs scheduler's tick through the same store-claimed slots, so a slot starts once; each firing is
// recorded (whether the sandbox accepted the process, not how it ended), the newest maxExecutions kept.

import { HangarError, type Logger, describeNameProblem, parseDuration, randomId, silentLogger } from "@hangar/common";
import type { SandboxScheduleExecutionRecord, SandboxScheduleRecord, SecretBox, Store, WorkspaceRecord } from "@hangar/store";
import { StoreConflictError } from "@hangar/store";
import { Cron } from "croner";
import type { TaskQueue } from "./queue.js";

/** The process request a schedule sends (the sandbox API's exec body). */
export interface ScheduleInput {
  command: string;
  name?: string;
  env?: Record<string, string>;
  keepAlive?: boolean;
  timeout?: number;
  workingDir?: string;
}

/** What schedules need from the sandboxes plane. */
export interface SandboxProcessPort {
  exists(workspaceId: string, sandboxName: string): Promise<boolean>;
  /** Starts the process in the sandbox (waking it); throws a HangarError when it cannot. */
  exec(workspaceId: string, sandboxName: string, input: ScheduleInput): Promise<void>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const fail = (field: string, message: string): never => {
  throw new HangarError("validation_failed", `${field}: ${message}`, { field });
};

export class SandboxScheduleService {
  private readonly log: Logger;

  constructor(private readonly opts: { store: Store; secrets: SecretBox; sandboxes: SandboxProcessPort; logger?: Logger }) {
    this.log = opts.logger ?? silentLogger;
  }

  private async sandbox(ws: WorkspaceRecord, name: string): Promise<void> {
    if (!(await this.opts.sandboxes.exists(ws.id, name))) throw new HangarError("sandbox_not_found", `sandbox '${name}' not found in workspace '${ws.name}'`);
  }

  /** Validates a schedule body (fields absent keep `prev`'s). */
  private normalize(body: unknown, prev: SandboxScheduleRecord | null, now: Date): Pick<SandboxScheduleRecord, "type" | "value" | "input" | "maxExecutions"> {
    if (!isObj(body)) fail("body", "an object {type, value, input, maxExecutions?}");
    const b = body as Record<string, unknown>;
    const type = b.type ?? prev?.type;
    if (type !== "cron" && type !== "at" && type !== "sleep") fail("type", "cron, at or sleep");
    const raw = b.value ?? prev?.value;
    if (typeof raw !== "string" || !raw.trim()) fail("value", "a cron expression, an RFC 3339 time or a duration");
    let value = (raw as string).trim();
    let kind = type as string;
    if (type === "cron") {
      try {
        new Cron(value, { paused: true }).stop();
      } catch (e) {
        fail("value", `not a valid cron expression (${e instanceof Error ? e.message : String(e)})`);
      }
    } else if (type === "at") {
      if (Number.isNaN(Date.parse(value))) fail("value", "an RFC 3339 time such as 2026-07-01T09:00:00Z");
      value = new Date(value).toISOString();
    } else {
      value = new Date(now.getTime() + parseDuration(value, "value")).toISOString();
      kind = "at";
    }
    const rawInput = b.input ?? prev?.input;
    if (!isObj(rawInput)) fail("input", "an object {command, name?, env?, keepAlive?, timeout?, workingDir?}");
    const i = rawInput as Record<string, unknown>;
    if (typeof i.command !== "string" || !i.command.trim()) fail("input.command", "a non-empty shell command");
    if (i.name !== undefined && typeof i.name !== "string") fail("input.name", "a string");
    if (i.workingDir !== undefined && typeof i.workingDir !== "string") fail("input.workingDir", "a string");
    if (i.keepAlive !== undefined && typeof i.keepAlive !== "boolean") fail("input.keepAlive", "true or false");
    if (i.timeout !== undefined && (typeof i.timeout !== "number" || !Number.isInteger(i.timeout) || i.timeout < 0)) fail("input.timeout", "an integer number of seconds, 0 for none");
    if (i.env !== undefined && (!isObj(i.env) || Object.values(i.env).some((v) => typeof v !== "string"))) fail("input.env", "an object of strings");
    // env values are sealed at rest; a masked value sent back keeps the stored one
    const before = (prev?.input.env ?? {}) as Record<string, string>;
    const env = i.env ? Object.fromEntries(Object.entries(i.env as Record<string, string>).map(([k, v]) => [k, v === "***" && before[k] ? before[k] : this.opts.secrets.seal(v)])) : undefined;
    const input = { ...i, ...(env ? { env } : {}) };
    const max = b.maxExecutions ?? prev?.maxExecutions ?? 100;
    if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 1000) fail("maxExecutions", "an integer from 1 to 1000");
    return { type: kind, value, input, maxExecutions: max as number };
  }

  view(r: SandboxScheduleRecord): Record<string, unknown> {
    const env = r.input.env as Record<string, string> | undefined;
    return { id: r.id, type: r.type, value: r.value, input: { ...r.input, ...(env ? { env: Object.fromEntries(Object.keys(env).map((k) => [k, "***"])) } : {}) }, maxExecutions: r.maxExecutions, sandbox: r.sandboxName, createdAt: r.createdAt };
  }

  executionView(e: SandboxScheduleExecutionRecord): Record<string, unknown> {
    return { id: e.id, scheduleId: e.scheduleId, sandbox: e.sandboxName, executedAt: e.executedAt, createdAt: e.executedAt, status: e.status, statusCode: e.statusCode, processName: e.processName, error: e.error, timeout: e.timeout };
  }

  async create(ws: WorkspaceRecord, sandbox: string, body: unknown): Promise<SandboxScheduleRecord> {
    await this.sandbox(ws, sandbox);
    const now = new Date();
    const id = isObj(body) && body.id !== undefined ? body.id : `sch-${randomId(8)}`;
    if (typeof id !== "string" || describeNameProblem(id)) fail("id", "lowercase letters, digits and '-'");
    const rec: SandboxScheduleRecord = { workspaceId: ws.id, sandboxName: sandbox, id: id as string, ...this.normalize(body, null, now), createdAt: now.toISOString(), updatedAt: now.toISOString() };
    try {
      return await this.opts.store.jobs.insertSchedule(rec);
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `schedule '${rec.id}' already exists on sandbox '${sandbox}'`);
      throw e;
    }
  }

  async get(ws: WorkspaceRecord, sandbox: string, id: string): Promise<SandboxScheduleRecord> {
    const r = await this.opts.store.jobs.getSchedule(ws.id, sandbox, id);
    if (!r) throw new HangarError("not_found", `schedule '${id}' not found on sandbox '${sandbox}'`);
    return r;
  }

  list(ws: WorkspaceRecord, sandbox?: string): Promise<SandboxScheduleRecord[]> {
    return this.opts.store.jobs.listSchedules(ws.id, sandbox);
  }

  async update(ws: WorkspaceRecord, sandbox: string, id: string, body: unknown): Promise<SandboxScheduleRecord> {
    const prev = await this.get(ws, sandbox, id);
    const now = new Date();
    const rec = { ...prev, ...this.normalize(body, prev, now), updatedAt: now.toISOString() };
    await this.opts.store.jobs.updateSchedule(rec);
    return rec;
  }

  async delete(ws: WorkspaceRecord, sandbox: string, id: string): Promise<SandboxScheduleRecord> {
    const prev = await this.get(ws, sandbox, id);
    await this.opts.store.jobs.deleteSchedule(ws.id, sandbox, id);
    return prev;
  }

  executions(ws: WorkspaceRecord, sandbox?: string, limit?: number): Promise<SandboxScheduleExecutionRecord[]> {
    return this.opts.store.jobs.listScheduleExecutions(ws.id, sandbox, limit);
  }

  /** Starts every schedule due at `now` whose slot this caller claims. */
  async fire(now: Date, queue: TaskQueue): Promise<void> {
    for (const s of await this.opts.store.jobs.listSchedules()) {
      const key = `sandbox:${s.workspaceId}:${s.sandboxName}`;
      let slot: Date | null = null;
      if (s.type === "at") {
        const at = new Date(s.value);
        if (at.getTime() <= now.getTime()) slot = at;
      } else {
        const cron = new Cron(s.value, { paused: true });
        const last = await queue.lastSlot(key, s.id);
        let next = cron.nextRun(new Date(Math.max(last?.getTime() ?? 0, Date.parse(s.updatedAt))));
        for (let i = 0; next && next.getTime() <= now.getTime() && i < 100_000; i++) {
          slot = next;
          next = cron.nextRun(next);
        }
        cron.stop();
      }
      if (!slot || !(await queue.claimSlot(key, s.id, slot))) continue;
      await this.run(s, now);
    }
  }

  private async run(s: SandboxScheduleRecord, now: Date): Promise<void> {
    const i = s.input as unknown as ScheduleInput;
    const processName = i.name ?? `schedule-${s.id}-${now.getTime().toString(36)}`;
    const env = i.env ? Object.fromEntries(Object.entries(i.env).map(([k, v]) => [k, this.opts.secrets.open(v)])) : undefined;
    const timeout = i.timeout ?? 600;
    let statusCode = 200;
    let error = "";
    try {
      await this.opts.sandboxes.exec(s.workspaceId, s.sandboxName, { ...i, name: processName, keepAlive: i.keepAlive ?? true, timeout, ...(env ? { env } : {}) });
    } catch (e) {
      statusCode = e instanceof HangarError ? e.status : 0;
      error = e instanceof Error ? e.message : String(e);
      this.log.warn({ err: e, sandbox: s.sandboxName, schedule: s.id }, "a sandbox schedule could not start its process");
    }
    await this.opts.store.jobs.insertScheduleExecution(
      { id: randomId(16), workspaceId: s.workspaceId, sandboxName: s.sandboxName, scheduleId: s.id, executedAt: now.toISOString(), status: error ? "failed" : "succeeded", statusCode, processName, error, timeout },
      s.maxExecutions,
    );
  }
}
