// MCP session ids on the run plane name the replica that holds the session: `<replicaId>.<id>`.
// A function's own Streamable HTTP server issues `<id>`; the edge hands the client
// `<replicaId>.<id>` and gives the server back `<id>`. Hangar's stdio bridge issues ids of that
// form itself. Nothing is kept in memory or in the store: any server process routes the session
// after a restart, and a session whose replica is gone is answered 404 (the client initializes anew).

/** The replica a session id names, if it names one. */
export function mcpSessionReplica(id: string | undefined): string | undefined {
  const dot = id ? id.indexOf(".") : -1;
  return dot > 0 ? id!.slice(0, dot) : undefined;
}

/** The id a client gets for a session its function's server issued on `replicaId`. */
export function pinMcpSession(replicaId: string, id: string): string {
  return `${replicaId}.${id}`;
}

/** The id the function's server issued, from the one its client sends. */
export function unpinMcpSession(id: string): string {
  const dot = id.indexOf(".");
  return dot > 0 ? id.slice(dot + 1) : id;
}
