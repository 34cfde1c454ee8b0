// The run plane's view of workloads: /run/{ws}/agents/{name}/… → a replica and its port. Private
// workloads need an API key that reaches their workspace; public ones need nothing.

import { HangarError, TtlCache } from "@hangar/common";
import type { AuthService } from "@hangar/control-plane";
import type { Store, WorkspaceRecord } from "@hangar/store";
import type { AsyncResult, CallbackSender } from "./callbacks.js";
import { KIND_SINGULAR, type Routing, type WorkloadService } from "./workload-service.js";

export interface WorkloadRouterOptions {
  store: Store;
  auth: AuthService;
  workloads: WorkloadService;
  /** Delivers async calls' results to the workload's callback. */
  callbacks: CallbackSender;
}

export class WorkloadRouter {
  /** Workspaces by name, for a second. */
  private readonly workspaces = new TtlCache<string, WorkspaceRecord | null>(1_000);

  constructor(private readonly opts: WorkloadRouterOptions) {}

  async route(
    workspace: string,
    kind: string,
    name: string,
    authorization: string | undefined,
    session?: string,
  ): Promise<{ replicaId: string; port: number; done: () => void; onAsyncResult?: (r: AsyncResult) => Promise<void>; mcp?: Routing["mcp"] }> {
    if (!KIND_SINGULAR[kind]) throw new HangarError("route_not_found", `no ${kind} on the run plane`);
    const ws = await this.workspaces.getOrLoad(workspace, () => this.opts.store.workspaces.getByName(workspace));
    const r = ws ? await this.opts.workloads.routing(ws.id, kind, name) : null;
    if (!r?.public) {
      // the same answer whether or not the workload exists, for a caller without access
      const principal = await this.opts.auth.authenticate(authorization);
      if (!ws || !principal.workspaceIds.has(ws.id)) throw new HangarError("forbidden", `this API key has no access to workspace '${workspace}'`);
    }
    if (!r) throw new HangarError("not_found", `${KIND_SINGULAR[kind]} '${name}' not found in workspace '${workspace}'`);
    // an MCP session made by Hangar's bridge starts with its replica's id: it stays on that replica
    const pick = { ...this.opts.workloads.pick(r, r.mcp === "bridged" ? session?.split(".")[0] : undefined), ...(r.mcp ? { mcp: r.mcp } : {}) };
    const callback = r.callback;
    return callback ? { ...pick, onAsyncResult: async (result) => void (await this.opts.callbacks.send(callback, result)) } : pick;
  }
}
