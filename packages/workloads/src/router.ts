// The run plane's view of workloads: /run/{ws}/agents/{name}/… → a replica and its port. Private
// workloads need an API key that reaches their workspace; public ones need nothing.

import { HangarError, TtlCache, mcpSessionReplica, readCookie } from "@hangar/common";
import type { AuthService } from "@hangar/control-plane";
import type { Store, WorkloadRecord, WorkspaceRecord } from "@hangar/store";
import type { AsyncCall, AsyncCallService } from "./async-calls.js";
import { KIND_SINGULAR, type Routing, type WorkloadService } from "./workload-service.js";

export interface WorkloadRouterOptions {
  store: Store;
  auth: AuthService;
  workloads: WorkloadService;
  /** Stores async calls, which run and are delivered in the background. */
  asyncCalls: AsyncCallService;
}

export class WorkloadRouter {
  /** Workspaces by name, for a second. */
  private readonly workspaces = new TtlCache<string, WorkspaceRecord | null>(1_000);
  /** Workloads by id (the invoke URL), for a second. */
  private readonly byId = new TtlCache<string, WorkloadRecord | null>(1_000);

  constructor(private readonly opts: WorkloadRouterOptions) {}

  /** The workload with this id, routed as by name (the stable invoke URL); 404 alike for unknown ids and ids of other workspaces. */
  async routeById(id: string, authorization: string | undefined, cookie?: string, prefer?: string, mcpSession?: string): ReturnType<WorkloadRouter["route"]> {
    const w = await this.byId.getOrLoad(id, () => this.opts.store.workloads.getById(id));
    const ws = w ? await this.opts.store.workspaces.getById(w.workspaceId) : null;
    if (!w || !ws) {
      await this.opts.auth.authenticate(authorization);
      throw new HangarError("not_found", `no workload '${id}'`);
    }
    return this.route(ws.name, w.kind, w.name, authorization, cookie, prefer, mcpSession);
  }

  /**
   * `cookie`: the request's Cookie header, for sticky sessions between canary revisions; `prefer`:
   * the replica the client's connection already reaches (kept while it is not too busy);
   * `mcpSession`: the client's Mcp-Session-Id (functions), which keeps a bridged session on its replica.
   */
  async route(
    workspace: string,
    kind: string,
    name: string,
    authorization: string | undefined,
    cookie?: string,
    prefer?: string,
    mcpSession?: string,
  ): Promise<{ replicaId: string; port: number; done: () => void; setCookie?: string; enqueueAsync: (call: AsyncCall) => Promise<string>; mcp?: Routing["mcp"] }> {
    if (!KIND_SINGULAR[kind]) throw new HangarError("route_not_found", `no ${kind} on the run plane`);
    const ws = await this.workspaces.getOrLoad(workspace, () => this.opts.store.workspaces.getByName(workspace));
    const r = ws ? await this.opts.workloads.routing(ws.id, kind, name) : null;
    if (!r?.public) {
      // the same answer whether or not the workload exists, for a caller without access
      const principal = await this.opts.auth.authenticate(authorization);
      if (!ws || !principal.workspaceIds.has(ws.id)) throw new HangarError("forbidden", `this API key has no access to workspace '${workspace}'`);
    }
    if (!r) throw new HangarError("not_found", `${KIND_SINGULAR[kind]} '${name}' not found in workspace '${workspace}'`);
    // a sticky client stays on the revision it first reached while both still serve
    const jar = r.stickyTtl > 0 && r.canary ? `bl-revision-${kind}-${name}` : null;
    // an MCP session id starts with its replica's id (the stdio bridge's own ids, and a Streamable
    // HTTP function's ids as the edge hands them out): the session stays there
    const pinned = r.mcp === "bridged" || r.mcp === "http-stream" ? mcpSessionReplica(mcpSession) : undefined;
    const pick = this.opts.workloads.pick(r, jar && cookie ? readCookie(cookie, jar) : undefined, prefer, pinned);
    const setCookie = jar ? `${jar}=${pick.revisionId}; Max-Age=${r.stickyTtl}; Path=/; HttpOnly; SameSite=Lax` : undefined;
    const id = r.workload.id;
    return { ...pick, ...(setCookie ? { setCookie } : {}), ...(r.mcp ? { mcp: r.mcp } : {}), enqueueAsync: (call) => this.opts.asyncCalls.enqueue(id, call) };
  }
}
