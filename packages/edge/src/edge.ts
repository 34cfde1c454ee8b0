// The edge: the run plane's front door. It authenticates, finds the sandbox a request is for,
// wakes it if needed and hands the request to the sandbox API or to a port inside the sandbox.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { HangarError, type Logger, asHangarError, sendProblem, silentLogger } from "@hangar/common";
import type { AuthService, SandboxService } from "@hangar/control-plane";
import type { LiveSandbox, LocalNode, SandboxServicesLike } from "@hangar/node";
import { proxyHttp, proxyUpgrade } from "./proxy.js";

/** The sandbox API as the edge drives it. */
export interface SandboxApiHandler<S> {
  handle(req: IncomingMessage, res: ServerResponse, services: S): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, services: S): void;
}

export interface EdgeOptions<S extends SandboxServicesLike> {
  auth: AuthService;
  sandboxes: SandboxService;
  node: LocalNode<S>;
  api: SandboxApiHandler<S>;
  logger?: Logger;
}

/** A request routed to one sandbox: what it targets inside it. */
interface SandboxRoute {
  workspace: string;
  name: string;
  /** Path inside the sandbox URL, with the query string. */
  rest: string;
}

const SANDBOX_PATH = /^\/run\/([^/?]+)\/sandboxes\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
const PORT_PATH = /^\/port\/(\d{1,5})(\/[^?]*)?(\?.*)?$/;

/** Path prefix of a sandbox's data-plane URL on this server. */
export function sandboxPathPrefix(workspace: string, name: string): string {
  return `/run/${encodeURIComponent(workspace)}/sandboxes/${encodeURIComponent(name)}`;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class Edge<S extends SandboxServicesLike> {
  private readonly log: Logger;

  constructor(private readonly opts: EdgeOptions<S>) {
    this.log = opts.logger ?? silentLogger;
  }

  private route(url: string | undefined): SandboxRoute | null {
    const m = SANDBOX_PATH.exec(url ?? "");
    if (!m) return null;
    try {
      return { workspace: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]!), rest: (m[3] || "/") + (m[4] ?? "") };
    } catch {
      return null;
    }
  }

  /** Authenticates the request and finds the live sandbox it targets. */
  private async resolve(req: IncomingMessage, r: SandboxRoute): Promise<LiveSandbox<S>> {
    const principal = await this.opts.auth.authenticate(header(req, "x-blaxel-authorization") ?? header(req, "authorization"));
    const ws = await this.opts.auth.resolveWorkspace(principal, r.workspace);
    const rec = await this.opts.sandboxes.get(ws, r.name);
    if (rec.status !== "DEPLOYED") throw new HangarError("sandbox_unavailable", `sandbox '${r.name}' is ${rec.status}`);
    return this.opts.node.get(rec.id);
  }

  /** Handles run-plane requests; returns false for requests that belong elsewhere. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const r = this.route(req.url);
    if (!r) return false;
    this.resolve(req, r).then(
      (live) => this.dispatch(req, res, r, live),
      (e) => sendProblem(res, asHangarError(e)),
    );
    return true;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const r = this.route(req.url);
    if (!r) return false;
    this.resolve(req, r).then(
      (live) => {
        const port = PORT_PATH.exec(r.rest);
        req.url = r.rest;
        if (port) proxyUpgrade(req, socket, head, this.portTarget(live, port), { dropHeaders: ["x-blaxel-authorization"] });
        else this.opts.api.handleUpgrade(req, socket, head, live.services);
      },
      (e) => {
        const err = asHangarError(e);
        socket.end(`HTTP/1.1 ${err.status} ${err.code}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      },
    );
    return true;
  }

  private portTarget(live: LiveSandbox<S>, m: RegExpExecArray) {
    const port = Number(m[1]);
    if (port < 1 || port > 65_535) throw new HangarError("invalid_port", `port ${port} is out of range`);
    return { host: live.handle.address, port, path: (m[2] || "/") + (m[3] ?? "") };
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, r: SandboxRoute, live: LiveSandbox<S>): void {
    try {
      const port = PORT_PATH.exec(r.rest);
      if (port) {
        proxyHttp(req, res, this.portTarget(live, port), { dropHeaders: ["x-blaxel-authorization"] });
        return;
      }
      req.url = r.rest;
      this.opts.api.handle(req, res, live.services);
    } catch (e) {
      this.log.error({ err: e }, "edge dispatch failed");
      sendProblem(res, asHangarError(e));
    }
  }
}
