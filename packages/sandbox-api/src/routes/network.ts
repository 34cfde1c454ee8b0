// Network routes (wire spec §5.6): ports of a process, port monitors; tunnels are not available.

import type { FastifyInstance } from "fastify";
import { HangarError } from "@hangar/common";
import { svc } from "../http.js";
import { pidParams, portMonitorSchema } from "../schemas.js";
import type { SandboxServices } from "../services.js";

/** The sandbox PID behind a pid parameter: a process's API pid maps to its current run. */
function osPid(s: SandboxServices, pid: number): number {
  const rec = s.processes.find(String(pid));
  return rec && rec.pid === String(pid) && rec.osPid ? rec.osPid : pid;
}

export async function networkRoutes(app: FastifyInstance): Promise<void> {
  app.get<{ Params: { pid: number } }>("/network/process/:pid/ports", { schema: { params: pidParams } }, async (req) => {
    const s = svc(req);
    const ports = await s.network.portsOf(osPid(s, req.params.pid));
    return { pid: req.params.pid, ports };
  });

  app.post<{ Params: { pid: number }; Body: { callback: string } }>(
    "/network/process/:pid/monitor",
    { schema: { params: pidParams, body: portMonitorSchema } },
    async (req) => {
      const s = svc(req);
      await s.network.monitor(osPid(s, req.params.pid), req.body.callback);
      return { pid: req.params.pid, message: "Port monitoring started" };
    },
  );

  app.delete<{ Params: { pid: number } }>("/network/process/:pid/monitor", { schema: { params: pidParams } }, async (req) => {
    const s = svc(req);
    if (!s.network.unmonitor(osPid(s, req.params.pid))) {
      throw new HangarError("not_found", `no port monitor for pid ${req.params.pid}`);
    }
    return { pid: req.params.pid, message: "Port monitoring stopped" };
  });

  const tunnel = async () => {
    throw new HangarError("not_configured", "network tunnels (WireGuard egress) are not available on this Hangar node; egress goes through the node's own network policy");
  };
  app.put("/network/tunnel/config", tunnel);
  app.delete("/network/tunnel", tunnel);
}
