// System routes: welcome, health (wire spec §5.6), and the Blaxel features this node does not offer
// yet, answered with a clear not_configured problem.

import type { FastifyInstance } from "fastify";
import { HangarError } from "@hangar/common";
import { svc } from "../http.js";
import { goDuration } from "../util/go-format.js";

export interface SystemInfo {
  version: string;
  gitCommit: string;
  buildTime: string;
}

const WELCOME = {
  message: "Welcome to your Hangar sandbox",
  documentation: "https://docs.blaxel.ai/Sandboxes/Overview",
  description:
    "This sandbox speaks Blaxel's sandbox API: manage processes (/process), the filesystem (/filesystem), file watches (/watch/filesystem), a terminal (/terminal) and an MCP server (/mcp).",
};

export async function systemRoutes(app: FastifyInstance, info: SystemInfo): Promise<void> {
  app.route({ method: ["GET", "POST", "PUT", "DELETE", "PATCH"], url: "/", handler: async () => WELCOME });

  app.get("/health", async (req) => {
    const s = svc(req);
    const uptimeMs = Date.now() - s.startedAt.getTime();
    return {
      status: "ok",
      version: info.version,
      gitCommit: info.gitCommit,
      buildTime: info.buildTime,
      goVersion: `node${process.versions.node}`,
      os: process.platform,
      arch: process.arch === "x64" ? "amd64" : process.arch,
      uptime: goDuration(Math.floor(uptimeMs / 1000) * 1000),
      uptimeSeconds: Math.round(uptimeMs / 10) / 100,
      upgradeCount: 0,
      startedAt: s.startedAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
      lastUpgrade: { status: "idle", step: "none", version: "" },
      sandbox: s.name,
      processes: { running: s.processes.runningCount, keepAlive: s.keepAliveActive() },
    };
  });

  const unavailable = (what: string) => async () => {
    throw new HangarError("not_configured", `${what} is not available on this Hangar node yet`);
  };
  // (drive mounts: routes/drives.ts)
  app.post("/upgrade", unavailable("upgrading the sandbox API in place (Hangar upgrades with the server)"));
  app.post("/archive/export", unavailable("archive export"));
  app.post("/archive/resume", unavailable("archive resume"));
  app.get("/archive/status", unavailable("archive status"));
  app.post("/environment/reload", unavailable("reloading the environment from /bl/metadata (update the sandbox envs through the control plane)"));
}
