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
    // where the agent can be upgraded in place, the version is its build's and the counts are its own
    const agent = await s.agentUpgrade?.status();
    return {
      status: "ok",
      version: agent?.version ?? info.version,
      gitCommit: info.gitCommit,
      buildTime: info.buildTime,
      goVersion: `node${process.versions.node}`,
      os: process.platform,
      arch: process.arch === "x64" ? "amd64" : process.arch,
      uptime: goDuration(Math.floor(uptimeMs / 1000) * 1000),
      uptimeSeconds: Math.round(uptimeMs / 10) / 100,
      upgradeCount: agent?.upgradeCount ?? 0,
      startedAt: s.startedAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
      lastUpgrade: agent?.lastUpgrade ?? { status: "idle", step: "none", version: "" },
      sandbox: s.name,
      processes: { running: s.processes.runningCount, keepAlive: s.keepAliveActive() },
    };
  });

  const unavailable = (what: string) => async () => {
    throw new HangarError("not_configured", `${what} is not available on this Hangar node yet`);
  };
  // (drive mounts: routes/drives.ts)
  // Blaxel's self-upgrade: 200 at once, the agent replaced once the answer is out (it may have come
  // through the agent's own localhost:8080 relay); progress in /health lastUpgrade
  app.post("/upgrade", async (req, reply) => {
    const port = svc(req).agentUpgrade;
    if (!port) throw new HangarError("not_configured", "upgrading the sandbox agent in place is not available on this node");
    const body = (req.body ?? {}) as { version?: unknown };
    if (typeof body !== "object" || (body.version !== undefined && typeof body.version !== "string")) {
      throw new HangarError("validation_failed", "body.version must be a string (\"latest\" or a version /health reported)");
    }
    const start = port.begin(body.version);
    reply.raw.once("finish", () => setTimeout(start, 100));
    return { message: "Upgrade initiated" };
  });
  app.post("/archive/export", unavailable("archive export"));
  app.post("/archive/resume", unavailable("archive resume"));
  app.get("/archive/status", unavailable("archive status"));
  app.post("/environment/reload", unavailable("reloading the environment from /bl/metadata (update the sandbox envs through the control plane)"));
}
