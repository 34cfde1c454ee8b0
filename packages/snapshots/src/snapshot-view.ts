// The API shape of a snapshot, as @blaxel/core reads it (SandboxSnapshot).

import type { SandboxSpecDoc } from "@hangar/control-plane";
import type { SnapshotRecord } from "@hangar/store";

export function snapshotView(rec: SnapshotRecord, o: { workspaceName: string; sourceDeleted: boolean }): Record<string, unknown> {
  const spec = rec.spec as unknown as Partial<SandboxSpecDoc>;
  return {
    id: rec.id,
    name: rec.name,
    status: rec.status,
    createdAt: rec.createdAt,
    workspace: o.workspaceName,
    sandboxName: rec.sourceName,
    source: { name: rec.sourceName, kind: "sandbox", deleted: o.sourceDeleted },
    spec: {
      generation: "mk3",
      ...(spec.runtime?.image ? { image: spec.runtime.image } : {}),
      ...(spec.runtime?.memory ? { memory: spec.runtime.memory } : {}),
      ...(spec.runtime?.ports ? { ports: spec.runtime.ports } : {}),
      ...(spec.region ? { region: spec.region } : {}),
    },
    // Hangar: whether a fork or restore starts with the captured processes and memory
    processes: rec.processes,
    ...(rec.sizeBytes !== null ? { sizeBytes: rec.sizeBytes } : {}),
    ...(rec.error ? { error: rec.error } : {}),
  };
}
