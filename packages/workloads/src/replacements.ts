// Rolling replacements behind a workload's stable invoke URL (`/api/v2/endpoints/workloads/{id}`):
// a candidate revision starts beside the active one, takes the traffic once it answers on its port
// and its warmup is over, and the old one is kept for the rollback window before it goes. The
// state machine lives in the store and advances on a tick, so a restarted server carries on where
// the last one stopped:
//   launching ─ready─▶ warming ─warmup over─▶ switched ─window over─▶ completed
//       │                 │                      └─DELETE─▶ rolled_back (the old one serves again)
//       └─failed          └─DELETE─▶ cancelled (the candidate goes; nothing changed for callers)

import { HangarError, type Logger, randomId, silentLogger } from "@hangar/common";
import type { ReplacementRecord, Store, WorkloadRecord } from "@hangar/store";
import type { WorkloadService } from "./workload-service.js";

const TERMINAL = new Set(["completed", "cancelled", "rolled_back", "failed"]);
const MINUTE = 60_000;

export interface ReplacementInput {
  /** An image reference, or the id of one of the workload's revisions. */
  artifactId?: unknown;
  strategy?: unknown;
  config?: { warmupDurationMinutes?: unknown; keepOldVersionMinutes?: unknown };
  runtime?: { memory?: unknown };
}

export interface ReplacementServiceOptions {
  store: Store;
  workloads: WorkloadService;
  logger?: Logger;
  /** How often in-progress replacements are advanced (default 250 ms). */
  tickMs?: number;
}

export class ReplacementService {
  private readonly store: Store;
  private readonly log: Logger;
  /** Candidates being started by this process (the launch is awaited across ticks). */
  private readonly launching = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;

  constructor(private readonly opts: ReplacementServiceOptions) {
    this.store = opts.store;
    this.log = opts.logger ?? silentLogger;
  }

  /** Starts a replacement; 422 while another is in progress or nothing runs yet. */
  async create(w: WorkloadRecord, input: ReplacementInput): Promise<ReplacementRecord> {
    if (input.strategy !== undefined && input.strategy !== "rolling") throw new HangarError("validation_failed", 'strategy: only "rolling" is supported');
    if (typeof input.artifactId !== "string" || !input.artifactId.trim()) throw new HangarError("validation_failed", "artifactId: an image reference or a revision id of this workload");
    const minutes = (v: unknown, field: string) => {
      if (v === undefined || v === null) return 0;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 24 * 60) throw new HangarError("validation_failed", `config.${field}: minutes from 0 to 1440`);
      return v;
    };
    const config = { warmupDurationMinutes: minutes(input.config?.warmupDurationMinutes, "warmupDurationMinutes"), keepOldVersionMinutes: minutes(input.config?.keepOldVersionMinutes, "keepOldVersionMinutes") };
    const memory = input.runtime?.memory;
    if (memory !== undefined && (typeof memory !== "number" || !Number.isInteger(memory) || memory < 128 || memory > 65_536)) throw new HangarError("validation_failed", "runtime.memory: an integer from 128 to 65536 (MB)");
    if (!w.activeRevision) throw new HangarError("unprocessable", `workload '${w.name}' has no active revision to replace`);
    const open = (await this.store.workloads.listReplacements(w.id)).find((r) => !TERMINAL.has(r.status));
    if (open) throw new HangarError("replacement_in_progress", `replacement ${open.id} is ${open.status}`);
    const artifact = input.artifactId.trim();
    const named = await this.store.workloads.getRevision(artifact);
    const image = named && named.workloadId === w.id ? named.image : artifact;
    const candidate = await this.opts.workloads.candidateRevision(w, image, typeof memory === "number" ? memory : named && named.workloadId === w.id ? Number(named.runtime.memory) : undefined);
    const rec: ReplacementRecord = {
      id: `rep_${randomId(12)}`,
      workloadId: w.id,
      status: "launching",
      strategy: "rolling",
      config,
      artifact,
      candidateRevision: candidate.id,
      previousRevision: w.activeRevision,
      message: null,
      createdAt: new Date().toISOString(),
      readyAt: null,
      switchedAt: null,
      finishedAt: null,
    };
    await this.store.workloads.insertReplacement(rec);
    void this.tick();
    return rec;
  }

  /** The latest replacement of the workload; 404 when it never had one. */
  async current(w: WorkloadRecord): Promise<ReplacementRecord> {
    const [latest] = await this.store.workloads.listReplacements(w.id);
    if (!latest) throw new HangarError("not_found", `workload '${w.name}' has no replacement`);
    return latest;
  }

  history(w: WorkloadRecord): Promise<ReplacementRecord[]> {
    return this.store.workloads.listReplacements(w.id);
  }

  /** Cancels the replacement in progress: before the switch the candidate goes; after it, the old revision serves again. */
  async cancel(w: WorkloadRecord): Promise<ReplacementRecord> {
    const open = (await this.store.workloads.listReplacements(w.id)).find((r) => !TERMINAL.has(r.status));
    if (!open) throw new HangarError("not_found", `workload '${w.name}' has no replacement in progress`);
    const now = new Date().toISOString();
    if (open.status === "switched" && open.previousRevision) {
      await this.opts.workloads.promote(w.id, open.previousRevision, true);
      await this.opts.workloads.retire(w.id, open.candidateRevision!);
      return (await this.store.workloads.updateReplacement(open.id, { status: "rolled_back", finishedAt: now, message: "cancelled in the rollback window: the previous revision serves again" }))!;
    }
    const done = (await this.store.workloads.updateReplacement(open.id, { status: "cancelled", finishedAt: now, message: "cancelled before the switch" }))!;
    if (open.candidateRevision) {
      await this.opts.workloads.retire(w.id, open.candidateRevision);
      await this.store.workloads.updateRevision(open.candidateRevision, { status: "RETIRED" });
    }
    return done;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.opts.tickMs ?? 250);
    this.timer.unref?.();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Advances every replacement in progress by what its state and the clock allow. */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const r of await this.store.workloads.listReplacements()) {
        if (TERMINAL.has(r.status)) continue;
        await this.advance(r).catch((e) => this.log.warn({ err: e, replacement: r.id }, "replacement step failed"));
      }
    } finally {
      this.ticking = false;
    }
  }

  private async advance(r: ReplacementRecord): Promise<void> {
    const now = Date.now();
    const cand = r.candidateRevision ? await this.store.workloads.getRevision(r.candidateRevision) : null;
    if (!cand) {
      await this.store.workloads.updateReplacement(r.id, { status: "failed", finishedAt: new Date().toISOString(), message: "the candidate revision is gone" });
      return;
    }
    if (r.status === "launching" && !this.launching.has(r.id)) {
      this.launching.add(r.id);
      void (async () => {
        // a launch a previous server left half-way starts over
        await this.opts.workloads.retire(r.workloadId, cand.id);
        const ok = await this.opts.workloads.startReplicas(r.workloadId, cand, true);
        const cur = (await this.store.workloads.listReplacements(r.workloadId)).find((x) => x.id === r.id);
        if (cur?.status !== "launching") return void (ok && (await this.opts.workloads.retire(r.workloadId, cand.id)));
        if (!ok) await this.store.workloads.updateReplacement(r.id, { status: "failed", finishedAt: new Date().toISOString(), message: (await this.store.workloads.getRevision(cand.id))?.message ?? "the candidate did not start" });
        else {
          await this.store.workloads.updateRevision(cand.id, { status: "READY" });
          await this.store.workloads.updateReplacement(r.id, { status: "warming", readyAt: new Date().toISOString() });
        }
      })()
        .catch((e) => this.log.warn({ err: e, replacement: r.id }, "launching a candidate failed"))
        .finally(() => this.launching.delete(r.id));
      return;
    }
    if (r.status === "warming" && now - Date.parse(r.readyAt!) >= r.config.warmupDurationMinutes * MINUTE) {
      const keep = r.config.keepOldVersionMinutes > 0;
      await this.opts.workloads.promote(r.workloadId, cand.id, keep);
      await this.store.workloads.updateReplacement(r.id, keep ? { status: "switched", switchedAt: new Date().toISOString() } : { status: "completed", switchedAt: new Date().toISOString(), finishedAt: new Date().toISOString() });
      return;
    }
    if (r.status === "switched" && now - Date.parse(r.switchedAt!) >= r.config.keepOldVersionMinutes * MINUTE) {
      if (r.previousRevision) await this.opts.workloads.retire(r.workloadId, r.previousRevision);
      await this.store.workloads.updateReplacement(r.id, { status: "completed", finishedAt: new Date().toISOString() });
    }
  }
}

/** The API shape of a replacement (DataRobot's Workload API names). */
export function replacementView(r: ReplacementRecord): Record<string, unknown> {
  return {
    id: r.id,
    workloadId: r.workloadId,
    strategy: r.strategy,
    status: r.status,
    artifactId: r.artifact,
    config: r.config,
    candidateRevision: r.candidateRevision,
    previousRevision: r.previousRevision,
    message: r.message,
    createdAt: r.createdAt,
    readyAt: r.readyAt,
    switchedAt: r.switchedAt,
    finishedAt: r.finishedAt,
  };
}
