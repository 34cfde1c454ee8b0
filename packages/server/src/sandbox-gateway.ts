// The port at which processes in sandboxes reach this Hangar (job tasks: the API, the run plane and
// their execution's data URL). It listens on every address, on HANGAR_GATEWAY_PORT or a free port
// chosen once and kept in <data-dir>/gateway-port (tasks adopted after a restart keep their URLs);
// nftables opens it to sandboxes, and it answers only connections from loopback or from the
// addresses `allow` accepts (job task sandboxes): other sandboxes still cannot reach the control
// plane. Requests go to the same handler as the main listener.

import { readFile, writeFile } from "node:fs/promises";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { join } from "node:path";
import type { Logger } from "@hangar/common";

export interface SandboxGateway {
  port: number;
  /** Hands requests to the main server's handler (set once it exists). */
  attach(handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  close(): Promise<void>;
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const toInt = (a: string) => a.split(".").reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const v4 = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return false;
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return ((toInt(v4) & mask) >>> 0) === ((toInt(base!) & mask) >>> 0);
}

export async function startSandboxGateway(dataDir: string, sandboxCidr: string, configured: number | undefined, logger: Logger, allow: (ip: string) => boolean): Promise<SandboxGateway> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  const server: Server = createServer((req, res) => {
    if (!handler) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  server.on("connection", (s) => {
    const ip = s.remoteAddress ?? "";
    const v4 = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
    if (!(v4 === "127.0.0.1" || ip === "::1" || (inCidr(v4, sandboxCidr) && allow(v4)))) s.destroy();
  });
  const portFile = join(dataDir, "gateway-port");
  const kept = Number((await readFile(portFile, "utf8").catch(() => "0")).trim()) || 0;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "0.0.0.0", () => {
        server.off("error", reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  let port: number;
  try {
    port = await listen(configured || kept);
  } catch (e) {
    if (configured || !kept) throw e;
    logger.warn({ port: kept }, "sandbox gateway port taken; choosing another");
    port = await listen(0);
  }
  if (port !== kept) await writeFile(portFile, `${port}\n`);
  return {
    port,
    attach: (h) => (handler = h),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
