// An MCP transport over one WebSocket (either end): each JSON-RPC message is one text frame, as
// Blaxel's legacy WebSocket transports (core < 0.2.41, BlaxelMcpServerTransport) send them.

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import WebSocket from "ws";

export class WebSocketTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private closed = false;

  constructor(private readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      let msg: JSONRPCMessage;
      try {
        msg = JSONRPCMessageSchema.parse(JSON.parse(isBinary ? Buffer.from(data as Buffer).toString("utf8") : data.toString()));
      } catch (e) {
        this.onerror?.(new Error(`not a JSON-RPC message: ${(e as Error).message}`));
        return;
      }
      this.onmessage?.(msg);
    });
    ws.on("error", (e) => this.onerror?.(e));
    ws.on("close", () => this.ended());
  }

  /** Resolves once the socket is open (a client socket may still be connecting). */
  start(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`WebSocket refused: HTTP ${res.statusCode}`)));
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new Error("the WebSocket is closed"));
      this.ws.send(JSON.stringify(message), (e) => (e ? reject(e) : resolve()));
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    this.ended();
  }

  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}
