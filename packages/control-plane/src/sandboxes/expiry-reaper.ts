// Deletes sandboxes whose TTL, `expires` date or lifecycle policy is met (whichever comes first):
// TERMINATED with every runtime trace removed, then the record itself after its retention.
// Expiry is always recomputed from the spec and the latest activity before acting, so a stale
// stored value can delay a deletion but never make it early. The state lives in the store, so a
// restarted server goes on where it stopped.

import { type Logger, parseDuration, silentLogger } from "@hangar/common";
import type { SandboxRecord, Store } from "@hangar/store";
import type { SandboxNodePort } from "../node-port.js";
import { EXPIRED_MESSAGE, expiryDue } from "./expiry.js";
import type { SandboxSpecDoc } from "./sandbox-spec.js";

const DEFAULT_RETENTION_MS = 5 * 60_000;

export interface ExpiryReaperOptions {
  store: Store;
  node: SandboxNodePort;
  /** Latest activity known to the node (ms since the epoch), fresher than the stored lastUsedAt. */
  lastActivity: (id: string) => number | null;
  intervalMs?: number;
  logger?: Logger;
}

export class ExpiryReaper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: ExpiryReaperOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep().catch((e) => this.log.error({ err: e }, "expiry sweep failed")), this.opts.intervalMs ?? 1_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass; concurrent calls share the pass in progress. */
  sweep(now = Date.now()): Promise<void> {
    this.running ??= this.sweepOnce(now).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async sweepOnce(now: number): Promise<void> {
    const { store } = this.opts;
    for (const rec of await store.sandboxes.listExpiring(new Date(now).toISOString())) {
      if (rec.status === "DELETING" || rec.status === "DEPLOYING") continue;
      const due = expiryDue(rec, this.opts.lastActivity(rec.id));
      if (due === null || due > now) {
        // Activity or an update moved the expiry: store the fresher value and wait.
        await store.sandboxes.update(rec.id, { expiresAt: due === null ? null : new Date(due).toISOString() }, rec.version);
        continue;
      }
      await this.terminate(rec, now);
    }
    for (const rec of await store.sandboxes.listTerminated()) {
      const retention = (rec.spec as unknown as SandboxSpecDoc).lifecycle?.terminatedRetention;
      const keepMs = retention ? parseDuration(retention) : DEFAULT_RETENTION_MS;
      if (Date.parse(rec.terminatedAt!) + keepMs <= now) await store.sandboxes.delete(rec.id);
    }
    for (const p of await store.previews.listExpired(new Date(now).toISOString())) await store.previews.delete(p.id);
  }

  private async terminate(rec: SandboxRecord, now: number): Promise<void> {
    const at = new Date(now).toISOString();
    const marked = await this.opts.store.sandboxes.update(
      rec.id,
      { status: "TERMINATED", terminatedAt: at, updatedAt: at, events: [...rec.events, { type: "deployment", status: "TERMINATED", message: EXPIRED_MESSAGE, time: at }] },
      rec.version,
    );
    if (!marked) return; // changed meanwhile; the next pass re-reads it
    this.log.info({ sandbox: rec.name, workspace: rec.workspaceId }, "sandbox expired");
    await this.opts.node.destroy(rec.id);
    await this.opts.store.previews.deleteForSandbox(rec.id);
  }
}
