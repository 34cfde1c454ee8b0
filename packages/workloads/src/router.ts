// The run plane's view of workloads: /run/{ws}/agents/{name}/… → a replica and its port. Private
// workloads need an API key that reaches their workspace; public ones need nothing.

import { HangarError } from "@hangar/common";
import type { AuthService } from "@hangar/control-plane";
import type { Store } from "@hangar/store";
import type { WorkloadSpecDoc } from "./workload-spec.js";
import { KIND_SINGULAR, type WorkloadService } from "./workload-service.js";

export interface WorkloadRouterOptions {
  store: Store;
  auth: AuthService;
  workloads: WorkloadService;
}

export class WorkloadRouter {
  constructor(private readonly opts: WorkloadRouterOptions) {}

  async route(workspace: string, kind: string, name: string, authorization: string | undefined): Promise<{ replicaId: string; port: number; done: () => void }> {
    if (!KIND_SINGULAR[kind]) throw new HangarError("route_not_found", `no ${kind} on the run plane`);
    const ws = await this.opts.store.workspaces.getByName(workspace);
    const w = ws ? await this.opts.store.workloads.get(ws.id, kind, name) : null;
    const isPublic = (w?.spec as unknown as WorkloadSpecDoc | undefined)?.public === true;
    if (!isPublic) {
      // the same answer whether or not the workload exists, for a caller without access
      const principal = await this.opts.auth.authenticate(authorization);
      if (!ws || !principal.workspaceIds.has(ws.id)) throw new HangarError("forbidden", `this API key has no access to workspace '${workspace}'`);
    }
    if (!w) throw new HangarError("not_found", `${KIND_SINGULAR[kind]} '${name}' not found in workspace '${workspace}'`);
    return this.opts.workloads.pick(w);
  }
}
