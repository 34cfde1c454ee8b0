// The node's volume storage (NodeStoragePort of @hangar/node): volumes claimed and mounted on the
// host before a sandbox starts, freed after it is destroyed.

import type { NodeSandboxSpec } from "@hangar/control-plane";
import type { StorageService } from "./storage-service.js";

export function nodeStorage(storage: StorageService) {
  return {
    prepare: (spec: NodeSandboxSpec) => storage.attach(spec.workspace, spec.id, spec.volumes ?? []),
    release: (id: string) => storage.release(id),
  };
}
