// The API shape of an agent (or function), as Blaxel's SDK and `bl` read it.

import type { WorkloadRecord } from "@hangar/store";
import type { WorkloadSpecDoc } from "./workload-spec.js";

export interface WorkloadViewContext {
  workspaceName: string;
  /** The run-plane URL (metadata.url). */
  url: string;
  /** Secret env values in clear (an admin asked with show_secrets=true). */
  revealed?: WorkloadSpecDoc;
  lite?: boolean;
}

export function workloadView(rec: WorkloadRecord, ctx: WorkloadViewContext): Record<string, unknown> {
  const stored = rec.spec as unknown as WorkloadSpecDoc;
  const spec: WorkloadSpecDoc = ctx.revealed ?? {
    ...stored,
    runtime: { ...stored.runtime, ...(stored.runtime.envs ? { envs: stored.runtime.envs.map((e) => (e.secret ? { ...e, value: "" } : e)) } : {}) },
  };
  const view: Record<string, unknown> = {
    metadata: {
      name: rec.name,
      displayName: rec.displayName,
      labels: rec.labels,
      url: ctx.url,
      workspace: ctx.workspaceName,
      createdAt: rec.createdAt,
      updatedAt: rec.updatedAt,
    },
    spec: { ...spec, ...(rec.activeRevision ? { revision: { ...(spec.revision ?? {}), active: rec.activeRevision } } : {}) },
    status: rec.status,
  };
  if (!ctx.lite) view.events = rec.events;
  return view;
}
