// Cron triggers of jobs: every tick, each enabled schedule's latest due slot is claimed in the store
// (one row per job, trigger and slot) and only the claimer starts the execution, so a restart or a
// second server never starts a slot twice. Missed-run policy: slots missed while no server ran
// collapse into one catch-up execution for the latest of them; older ones are skipped. A slot is
// started at most once (a crash between the claim and the execution's insert loses that slot).

import { type Logger, silentLogger } from "@hangar/common";
import type { Store } from "@hangar/store";
import { Cron } from "croner";
import type { JobSpecDoc } from "./job-spec.js";
import { JOBS_KIND, type JobService } from "./job-service.js";
import type { TaskQueue } from "./queue.js";
import type { SandboxScheduleService } from "./sandbox-schedules.js";

export interface JobSchedulerOptions {
  store: Store;
  jobs: JobService;
  queue: TaskQueue;
  logger?: Logger;
  /** How often schedules are checked (default 500 ms). */
  tickMs?: number;
  /** Sandbox schedules fire on the same tick and slots. */
  sandboxSchedules?: SandboxScheduleService;
}

export class JobScheduler {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly opts: JobSchedulerOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      void this.tick()
        .catch((e) => this.log.error({ err: e }, "job schedules failed"))
        .finally(() => (this.running = false));
    }, this.opts.tickMs ?? 500);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Fires every schedule that is due at `now`. */
  async tick(now = new Date()): Promise<void> {
    await this.opts.sandboxSchedules?.fire(now, this.opts.queue).catch((e) => this.log.error({ err: e }, "sandbox schedules failed"));
    for (const job of await this.opts.store.workloads.listAll()) {
      if (job.kind !== JOBS_KIND) continue;
      const spec = job.spec as unknown as JobSpecDoc;
      if (!spec.enabled || !job.activeRevision) continue;
      for (const t of spec.triggers ?? []) {
        if ((t.type !== "cron" && t.type !== "schedule") || !t.enabled || !t.configuration.schedule) continue;
        const cron = new Cron(t.configuration.schedule, { paused: true, ...(t.configuration.timezone ? { timezone: t.configuration.timezone } : {}) });
        // from the last slot fired, or from when the trigger was last set (no runs before it)
        const last = await this.opts.queue.lastSlot(job.id, t.id);
        const since = new Date(Math.max(last?.getTime() ?? 0, Date.parse(job.updatedAt)));
        let slot: Date | null = null;
        let next = cron.nextRun(since);
        for (let i = 0; next && next.getTime() <= now.getTime() && i < 100_000; i++) {
          slot = next;
          next = cron.nextRun(next);
        }
        cron.stop();
        if (!slot || !(await this.opts.queue.claimSlot(job.id, t.id, slot))) continue;
        const ws = await this.opts.store.workspaces.getById(job.workspaceId);
        if (!ws) continue;
        try {
          const out = await this.opts.jobs.createExecution(ws, job.name, { tasks: t.configuration.tasks ?? [{}] }, `cron:${t.id}`);
          await this.opts.store.jobs.setSlotExecution(job.id, t.id, slot.toISOString(), out.executionId);
          this.log.info({ job: job.name, trigger: t.id, slot: slot.toISOString(), execution: out.executionId }, "schedule fired");
        } catch (e) {
          this.log.warn({ err: e, job: job.name, trigger: t.id }, "a scheduled execution could not start");
        }
      }
    }
  }
}
