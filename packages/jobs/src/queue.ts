// The queue of task runs and the cron firing slots, behind one small interface: the store-backed
// engine below claims with leases (conditional updates), so nothing assumes one process owns the
// world; a PostgreSQL deployment could put pg-boss or Graphile Worker behind the same interface.

import type { JobTaskRecord, Store } from "@hangar/store";

export interface TaskQueue {
  /** Claims due task runs for this worker within the per-execution and node-wide caps. */
  claim(owner: string, node: string, nodeCap: number, leaseMs: number, newSandboxId: () => string): Promise<JobTaskRecord[]>;
  /** Keeps this worker's leases alive. */
  renew(owner: string, leaseMs: number): Promise<void>;
  /** Takes over a node's running tasks whose worker died (all of them when this process holds the node alone). */
  takeOver(node: string, owner: string, leaseMs: number, force: boolean): Promise<JobTaskRecord[]>;
  /** Claims one firing slot of a schedule; false when another worker (or an earlier life) fired it. */
  claimSlot(jobId: string, triggerId: string, slot: Date): Promise<boolean>;
  lastSlot(jobId: string, triggerId: string): Promise<Date | null>;
}

export class StoreTaskQueue implements TaskQueue {
  constructor(private readonly store: Store) {}

  claim(owner: string, node: string, nodeCap: number, leaseMs: number, newSandboxId: () => string): Promise<JobTaskRecord[]> {
    const now = Date.now();
    return this.store.jobs.claimTasks(owner, node, new Date(now).toISOString(), new Date(now + leaseMs).toISOString(), nodeCap, newSandboxId);
  }

  renew(owner: string, leaseMs: number): Promise<void> {
    return this.store.jobs.renewLeases(owner, new Date(Date.now() + leaseMs).toISOString());
  }

  takeOver(node: string, owner: string, leaseMs: number, force: boolean): Promise<JobTaskRecord[]> {
    const now = Date.now();
    return this.store.jobs.takeOver(node, owner, new Date(now).toISOString(), new Date(now + leaseMs).toISOString(), force);
  }

  claimSlot(jobId: string, triggerId: string, slot: Date): Promise<boolean> {
    return this.store.jobs.claimSlot(jobId, triggerId, slot.toISOString(), new Date().toISOString());
  }

  async lastSlot(jobId: string, triggerId: string): Promise<Date | null> {
    const s = await this.store.jobs.lastSlot(jobId, triggerId);
    return s ? new Date(s) : null;
  }
}
