// What a function bound to integration connections (spec.integrationConnections) gets: its names
// checked against the workspace's connections, and for each replica an egress policy that injects
// `Authorization: Bearer <access token>` for the integration's API hosts (the token refreshed by
// ConnectionTokens), plus the non-secret env of Hangar's built-in MCP server. The replica never
// holds the refresh token or the client secret.

import { HangarError } from "@hangar/common";
import type { Store } from "@hangar/store";
import type { ConnectionTokens } from "./connection-tokens.js";
import { PROVIDERS } from "./providers/index.js";
import type { ConnectionSpec } from "./gateway-service.js";

export interface ReplicaAccess {
  /** spec.network of the replica (secrets revealed, for the egress proxy only), null when none applies. */
  network: Record<string, unknown> | null;
  envs: Record<string, string>;
  /** Why a connection cannot serve now (its refresh failed), null when all can. */
  problem: string | null;
}

export class FunctionConnections {
  constructor(private readonly opts: { store: Store; tokens: ConnectionTokens }) {}

  /** Checks the names (connections of the workspace an MCP function can use); the built-in server they call for, if any. */
  async check(workspaceId: string, names: string[]): Promise<{ builtin: string | null }> {
    let builtin: string | null = null;
    for (const n of names) {
      const conn = await this.opts.store.gateway.get(workspaceId, "connections", n);
      if (!conn) throw new HangarError("validation_failed", `spec.integrationConnections: integration connection '${n}' not found in this workspace (POST /v0/integrations/connections creates it)`);
      const def = this.opts.tokens.integrationOf(conn);
      if (!def) {
        const p = PROVIDERS.get((conn.spec as unknown as ConnectionSpec).integration);
        throw new HangarError("validation_failed", `spec.integrationConnections: '${n}' is a ${p?.displayName ?? "model provider"} connection, which serves models, not functions`);
      }
      builtin ??= def.builtin ?? null;
    }
    return { builtin };
  }

  /** The egress policy and env of a replica bound to these connections, with fresh access tokens. */
  async access(workspaceId: string, names: string[]): Promise<ReplicaAccess> {
    const routing: Record<string, unknown>[] = [];
    const envs: Record<string, string> = {};
    const problems: string[] = [];
    for (const [i, n] of names.entries()) {
      const conn = await this.opts.store.gateway.get(workspaceId, "connections", n);
      if (!conn) {
        problems.push(`integration connection '${n}' not found`);
        continue;
      }
      const def = this.opts.tokens.integrationOf(conn);
      const ep = this.opts.tokens.endpoints(conn);
      if (!def || !ep) continue;
      if (def.apiUrlEnv) envs[def.apiUrlEnv] = ep.apiUrl;
      const key = `connection-${i}`;
      try {
        const t = await this.opts.tokens.token(workspaceId, n);
        routing.push({ destinations: ep.apiHosts, headers: { Authorization: `Bearer {{SECRET:${key}}}` }, secrets: { [key]: t.accessToken } });
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
        // the proxy answers the server's calls to the API with the reason (a clear error for its tool calls)
        routing.push({ destinations: ep.apiHosts, fail: e instanceof Error ? e.message : String(e) });
      }
    }
    return { network: routing.length ? { proxy: { routing } } : null, envs, problem: problems.length ? problems.join("; ") : null };
  }

  /** Why one of the connections fails now (the last refresh's error), without refreshing. */
  async problem(workspaceId: string, names: string[]): Promise<string | null> {
    for (const n of names) {
      const p = await this.opts.tokens.problem(workspaceId, n);
      if (p) return p;
    }
    return null;
  }
}
