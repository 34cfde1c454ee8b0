// Async calls to agents (`?async=true`), durable: the edge stores the request and answers
// `{"success": true}`; workers lease stored calls, run each against a replica and deliver the answer
// to the workload's callback. A call is deleted once delivered (or when there is nowhere to deliver
// it). After a crash, queued calls run and answers not yet delivered are delivered; a call that was
// running when its server died is not run twice: its callback gets a 502 saying so.
//   queued ─lease─▶ running ─answer─▶ delivering ─callback sent─▶ (deleted)
//                      └─server died─▶ delivering (502 "interrupted")      └─refused/unreachable─▶ failed

import { HangarError, type Logger, randomId, silentLogger } from "@hangar/common";
import type { AsyncCallRecord, Store } from "@hangar/store";
import type { AsyncResult, CallbackSender } from "./callbacks.js";
import type { ReplicaPort, WorkloadService } from "./workload-service.js";

/** The request an async call replays against the agent. */
export interface AsyncCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface AsyncCallServiceOptions {
  store: Store;
  workloads: WorkloadService;
  replicas: ReplicaPort;
  callbacks: CallbackSender;
  logger?: Logger;
  /** Calls run at once by this server (default 32). */
  concurrency?: number;
  /** Lease on a claimed call, renewed while it runs (default 30 s). */
  leaseMs?: number;
  /** Longest an agent may take to answer (default 15 min, Blaxel's limit). */
  timeoutMs?: number;
  /** How long a call waits for the agent to have a running revision (default 15 min). */
  queueMs?: number;
}

const INTERRUPTED: AsyncResult = {
  statusCode: 502,
  body: JSON.stringify({ error: "the server restarted while the agent was answering; the call was not run again, so that it cannot run twice" }),
};

export class AsyncCallService {
  private readonly log: Logger;
  /** This process's lease owner name. */
  private readonly owner = `async-${randomId(10)}`;
  private readonly running = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private readonly opts: Required<Omit<AsyncCallServiceOptions, "logger">>;

  constructor(opts: AsyncCallServiceOptions) {
    this.log = opts.logger ?? silentLogger;
    this.opts = { concurrency: 32, leaseMs: 30_000, timeoutMs: 15 * 60_000, queueMs: 15 * 60_000, ...opts };
  }

  /** Stores a call; resolves once it is durable (the caller can then answer). */
  async enqueue(workloadId: string, call: AsyncCall): Promise<string> {
    const now = new Date().toISOString();
    const id = `acall_${randomId(16)}`;
    await this.opts.store.workloads.insertAsyncCall({ id, workloadId, status: "queued", ...call, resultStatus: null, resultBody: null, error: null, leaseOwner: null, leaseUntil: null, createdAt: now, updatedAt: now });
    void this.tick();
    return id;
  }

  /**
   * Frees the leases of calls a previous server of this data dir held (it is gone: the data-dir lock
   * says no other server uses this store), so they are taken at once rather than when leases expire.
   */
  async releaseOrphans(): Promise<number> {
    let n = 0;
    for (const c of await this.opts.store.workloads.listAsyncCalls()) {
      if (c.leaseOwner === this.owner || c.status === "failed") continue;
      await this.opts.store.workloads.updateAsyncCall(c.id, { leaseOwner: null, leaseUntil: null });
      n++;
    }
    return n;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), 250);
    this.timer.unref?.();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Claims what this server can take now: new calls, answers to deliver, calls whose server died. */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const room = this.opts.concurrency - this.running.size;
      if (room <= 0) return;
      const now = Date.now();
      const claimed = await this.opts.store.workloads.claimAsyncCalls(["queued", "running", "delivering"], this.owner, new Date(now).toISOString(), new Date(now + this.opts.leaseMs).toISOString(), room);
      for (const c of claimed) {
        this.running.add(c.id);
        void this.process(c)
          .catch((e) => this.log.warn({ err: e, call: c.id }, "async call step failed"))
          .finally(() => this.running.delete(c.id));
      }
    } catch (e) {
      this.log.warn({ err: e }, "claiming async calls failed");
    } finally {
      this.ticking = false;
    }
  }

  private async process(c: AsyncCallRecord): Promise<void> {
    const store = this.opts.store.workloads;
    const renew = setInterval(() => void store.updateAsyncCall(c.id, { leaseUntil: new Date(Date.now() + this.opts.leaseMs).toISOString() }).catch(() => undefined), this.opts.leaseMs / 3);
    try {
      let result: AsyncResult | null = c.resultStatus !== null ? { statusCode: c.resultStatus, body: c.resultBody ?? "" } : null;
      // running under a lease that expired: its server died mid-call
      if (c.status === "running") result = INTERRUPTED;
      if (c.status === "queued") {
        const route = await this.routing(c.workloadId);
        if (!route) return void (await store.deleteAsyncCall(c.id)); // the agent is gone
        let pick;
        try {
          pick = this.opts.workloads.pick(route);
        } catch (e) {
          // no running revision yet: wait (the lease lapses and the call is claimed again), within queueMs
          if (Date.now() - Date.parse(c.createdAt) < this.opts.queueMs) return void (await store.updateAsyncCall(c.id, { leaseUntil: new Date(Date.now() + 1_000).toISOString() }));
          result = { statusCode: 503, body: JSON.stringify({ error: e instanceof HangarError ? e.message : "no replica" }) };
        }
        if (pick) {
          await store.updateAsyncCall(c.id, { status: "running" });
          try {
            result = await this.opts.replicas.request(pick.replicaId, pick.port, { method: c.method, path: c.path, headers: c.headers, body: c.body }, this.opts.timeoutMs);
          } finally {
            pick.done();
          }
        }
      }
      await store.updateAsyncCall(c.id, { status: "delivering", resultStatus: result!.statusCode, resultBody: result!.body });
      const route = await this.routing(c.workloadId);
      if (!route?.callback) return void (await store.deleteAsyncCall(c.id));
      if (await this.opts.callbacks.send(route.callback, result!)) await store.deleteAsyncCall(c.id);
      else await store.updateAsyncCall(c.id, { status: "failed", error: "the callback was not delivered (refused or unreachable after retries)" });
    } finally {
      clearInterval(renew);
    }
  }

  private async routing(workloadId: string) {
    const w = await this.opts.store.workloads.getById(workloadId);
    return w ? this.opts.workloads.routing(w.workspaceId, w.kind, w.name) : null;
  }
}
