// Token accounting: usage counted per workspace, model and minute, kept in memory and written to
// the store in batches (every second, and on close); maxToken budgets checked against the stored
// sums (read at most once a second per model and window) plus what this process has not written yet.

import type { Logger } from "@hangar/common";
import type { ModelUsageRow, Store } from "@hangar/store";
import { type MaxTokens, windowMs } from "./policies.js";
import type { TokenUsage } from "./usage.js";

const MINUTE = 60_000;

interface Sums {
  requests: number;
  input: number;
  output: number;
  total: number;
}

/** The start of the minute of `t`, as stored. */
function bucketOf(t: number): string {
  return new Date(Math.floor(t / MINUTE) * MINUTE).toISOString();
}

export interface BudgetVerdict {
  policy: string;
  metric: "input" | "output" | "total";
  used: number;
  limit: number;
  windowMs: number;
}

export class Accountant {
  /** Usage not yet written, by "ws\0model\0bucket". */
  private pending = new Map<string, ModelUsageRow>();
  /** Stored sums per "ws\0model\0windowMs", with when they were read and the flush generation. */
  private readonly stored = new Map<string, { at: number; gen: number; sums: Sums }>();
  private generation = 0;
  /** The batch being written (counted until its transaction commits). */
  private inFlight: Map<string, ModelUsageRow> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly flushEveryMs = 1_000,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch((e) => this.logger.warn({ err: e }, "writing model usage failed")), this.flushEveryMs);
    this.timer.unref();
  }

  /** Counts one request's usage. */
  record(workspaceId: string, model: string, u: TokenUsage, at = Date.now()): void {
    const bucket = bucketOf(at);
    const key = `${workspaceId}\0${model}\0${bucket}`;
    let row = this.pending.get(key);
    if (!row) {
      row = { workspaceId, model, bucket, requests: 0, inputTokens: 0, outputTokens: 0, totalTokens: 0 };
      this.pending.set(key, row);
    }
    row.requests += 1;
    row.inputTokens += u.input;
    row.outputTokens += u.output;
    row.totalTokens += u.total || u.input + u.output;
  }

  /** Writes what is pending in one transaction. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (!this.pending.size) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.inFlight = batch;
    this.flushing = this.store
      .transaction((tx) => tx.gateway.addUsage([...batch.values()]))
      .then(
        () => {
          // stored sums read before this write are stale now
          this.inFlight = null;
          this.generation++;
          this.stored.clear();
        },
        (e) => {
          // keep the counts for the next try
          this.inFlight = null;
          for (const [k, row] of batch) {
            const now = this.pending.get(k);
            if (!now) this.pending.set(k, row);
            else {
              now.requests += row.requests;
              now.inputTokens += row.inputTokens;
              now.outputTokens += row.outputTokens;
              now.totalTokens += row.totalTokens;
            }
          }
          throw e;
        },
      )
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  /** Sums over the last `ms` (whole minutes), stored and not yet stored. */
  async sums(workspaceId: string, model: string, ms: number, now = Date.now()): Promise<Sums> {
    const from = bucketOf(now - ms + MINUTE);
    const key = `${workspaceId}\0${model}\0${ms}`;
    for (let attempt = 0; ; attempt++) {
      const hit = this.stored.get(key);
      if (hit && now - hit.at <= 1_000 && hit.gen === this.generation) return this.withPending(hit.sums, workspaceId, model, from);
      const gen = this.generation;
      const rows = await this.store.gateway.usage(workspaceId, model, from);
      const sums = { requests: 0, input: 0, output: 0, total: 0 };
      for (const r of rows) {
        sums.requests += r.requests;
        sums.input += r.inputTokens;
        sums.output += r.outputTokens;
        sums.total += r.totalTokens;
      }
      // a write that landed meanwhile may or may not be in these rows: read again
      if (gen === this.generation || attempt >= 2) {
        this.stored.set(key, { at: now, gen: this.generation, sums });
        return this.withPending(sums, workspaceId, model, from);
      }
    }
  }

  private withPending(base: Sums, workspaceId: string, model: string, from: string): Sums {
    const out = { ...base };
    const prefix = `${workspaceId}\0${model}\0`;
    for (const map of this.inFlight ? [this.pending, this.inFlight] : [this.pending]) {
      for (const [k, row] of map) {
        if (!k.startsWith(prefix) || row.bucket < from) continue;
        out.requests += row.requests;
        out.input += row.inputTokens;
        out.output += row.outputTokens;
        out.total += row.totalTokens;
      }
    }
    return out;
  }

  /** The first maxToken policy already used up (the request that crossed it went through), or null. */
  async overBudget(workspaceId: string, model: string, budgets: { name: string; spec: { maxTokens?: MaxTokens } }[]): Promise<BudgetVerdict | null> {
    for (const b of budgets) {
      const m = b.spec.maxTokens;
      if (!m) continue;
      const ms = windowMs(m);
      const s = await this.sums(workspaceId, model, ms);
      for (const metric of ["total", "input", "output"] as const) {
        const limit = m[metric];
        if (limit > 0 && s[metric] >= limit) return { policy: b.name, metric, used: s[metric], limit, windowMs: ms };
      }
    }
    return null;
  }

  /** Stored usage rows of a model from `from` on (call flush first for this process's latest). */
  rows(workspaceId: string, model: string, from: string): Promise<ModelUsageRow[]> {
    return this.store.gateway.usage(workspaceId, model, from);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush().catch((e) => this.logger.warn({ err: e }, "writing model usage failed"));
  }
}
