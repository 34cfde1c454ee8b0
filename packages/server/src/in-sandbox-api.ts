// The host end of the in-sandbox API relay: the agent relays 127.0.0.1:8080 inside each sandbox to
// /.hangar/run/api.sock, which is <agentDir>/api.sock on the host. One unix socket per sandbox,
// served by the sandbox API with that sandbox's services only: which socket accepted a connection
// says which sandbox is speaking, so no credential is involved and nothing else is reachable.

import { chmod, chown, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { Duplex } from "node:stream";
import { HangarError, type Logger, asHangarError, sendProblem } from "@hangar/common";
import type { LocalNode } from "@hangar/node";
import type { SandboxApi, SandboxServices } from "@hangar/sandbox-api";

export interface InSandboxApiOptions {
  node: LocalNode<SandboxServices>;
  api: SandboxApi;
  /** Host directory bind-mounted at /.hangar/run in the sandbox. */
  agentDir: (id: string) => string;
  /** Host uid of the sandbox's root: the socket is owned by it (0600), so only that sandbox's agent connects. */
  rootUid: (id: string) => Promise<number>;
  logger: Logger;
}

export class InSandboxApi {
  private readonly servers = new Map<string, Promise<Server | null>>();
  private closed = false;

  constructor(private readonly opts: InSandboxApiOptions) {}

  /** Serves `<agentDir(id)>/api.sock` (idempotent: once per sandbox until close(id)). */
  open(id: string): void {
    if (this.closed || this.servers.has(id)) return;
    const p = this.listen(id).catch((e: unknown) => {
      this.opts.logger.warn({ err: e, id }, "serving the in-sandbox API socket failed");
      this.servers.delete(id);
      return null;
    });
    this.servers.set(id, p);
  }

  /** Stops serving a sandbox's socket (it was destroyed). */
  async close(id: string): Promise<void> {
    const p = this.servers.get(id);
    this.servers.delete(id);
    const s = await p;
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    // streams opened from inside (logs, watches) end with it
    s.closeAllConnections();
    await closed;
  }

  /** Stops serving every socket (the server stops; the next start serves them again). */
  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.servers.keys()].map((id) => this.close(id)));
  }

  private async listen(id: string): Promise<Server | null> {
    const dir = this.opts.agentDir(id);
    if (!existsSync(dir)) return null;
    const path = `${dir}/api.sock`;
    const server = createServer((req, res) => this.request(id, req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(id, req, socket, head));
    // a socket left by an earlier server process: replaced
    await rm(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    await chown(path, await this.opts.rootUid(id), 0);
    return server;
  }

  private request(id: string, req: IncomingMessage, res: ServerResponse): void {
    if (/^\/+drives(\/|\?|$)/.test(req.url ?? "")) {
      // drives are workspace resources: mounting them is for callers with an API key
      return sendProblem(res, new HangarError("forbidden", "drive mounts are not available through the in-sandbox API: use the sandbox URL with an API key"));
    }
    this.opts.node.acquire(id, "request").then(
      (lease) => {
        res.once("close", () => lease.release());
        this.opts.api.handle(req, res, lease.live.services);
      },
      (e: unknown) => sendProblem(res, asHangarError(e)),
    );
  }

  private upgrade(id: string, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.opts.node.acquire(id, "connection").then(
      (lease) => {
        socket.once("close", () => lease.release());
        socket.on("data", () => lease.touch());
        this.opts.api.handleUpgrade(req, socket, head, lease.live.services);
      },
      () => socket.destroy(),
    );
  }
}
