// The run plane's MCP bridging, in Hangar's process: a function's clients reach it over the
// transport they speak, whatever the function's server speaks. Only MCP messages are relayed here
// (the function's code runs in its replica sandbox).
//   - a WebSocket client (Blaxel's SDKs before 0.2.41) of a Streamable HTTP function: each socket
//     is a session of the function's /mcp;
//   - a Streamable HTTP client of a WebSocket function (legacy BlaxelMcpServerTransport servers):
//     each session is a WebSocket to the function's root.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import WebSocket from "ws";
import { McpGateway } from "./gateway.js";
import { WebSocketTransport } from "./ws-transport.js";

/** Where a bridged session goes: the replica's address, and the function it belongs to. */
export interface BridgeTarget {
  /** e.g. "default/functions/weather": Streamable HTTP sessions are only found again for it. */
  scope: string;
  /** `http://<replica>:<port>/mcp` (a Streamable HTTP server) or `ws://<replica>:<port>/` (a WebSocket one). */
  upstream: string;
}

export class RunPlaneMcpBridges {
  private readonly targets = new WeakMap<IncomingMessage, string>();
  private readonly gateway: McpGateway;

  constructor(opts: { log?: (m: string) => void; sessionIdleMs?: number } = {}) {
    this.gateway = new McpGateway({
      ...opts,
      connect: (req) => {
        const url = this.targets.get(req);
        if (!url) throw new Error("no upstream for this session");
        return url.startsWith("ws") ? new WebSocketTransport(new WebSocket(url)) : new StreamableHTTPClientTransport(new URL(url));
      },
    });
  }

  /** A WebSocket client of a Streamable HTTP function. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: BridgeTarget): void {
    this.targets.set(req, target.upstream);
    this.gateway.handleUpgrade(req, socket, head);
  }

  /** A Streamable HTTP request for a WebSocket function. */
  http(req: IncomingMessage, res: ServerResponse, target: BridgeTarget): Promise<void> {
    this.targets.set(req, target.upstream);
    return this.gateway.handleHttp(req, res, target.scope);
  }

  get size(): number {
    return this.gateway.size;
  }

  close(): Promise<void> {
    return this.gateway.close();
  }
}
