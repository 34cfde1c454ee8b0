// createSandboxApi: one Fastify application (not listening anywhere) that serves Blaxel's sandbox
// API for every sandbox of this node. The edge authenticates, strips the sandbox URL prefix and hands
// each request to `handle` (or `handleUpgrade`) with the sandbox's services.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { HangarError, PROBLEM_CONTENT_TYPE, type Logger, toProblem } from "@hangar/common";
import { attachServices, hijack, sendRawProblem, svc, toHangarError } from "./http.js";
import { handleMcpRequest } from "./mcp/server.js";
import { codegenRoutes } from "./routes/codegen.js";
import { filesystemRoutes } from "./routes/filesystem.js";
import { networkRoutes } from "./routes/network.js";
import { driveRoutes } from "./routes/drives.js";
import { processRoutes } from "./routes/process.js";
import { systemRoutes, type SystemInfo } from "./routes/system.js";
import { createTerminalUpgrade, terminalPageRoutes } from "./routes/terminal.js";
import type { SandboxServices } from "./services.js";

export interface SandboxApiOptions {
  logger: Logger;
  /** Reported by /health. */
  version?: string;
  gitCommit?: string;
  buildTime?: string;
}

export interface SandboxApi {
  /** Serves one HTTP request (URL already relative to the sandbox, e.g. `/process`). */
  handle(req: IncomingMessage, res: ServerResponse, services: SandboxServices): void;
  /** Serves one WebSocket upgrade (`/terminal/ws`). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, services: SandboxServices): void;
  /** Resolves once the routes are compiled (handle() waits for it on its own). */
  ready(): Promise<void>;
  /** The Fastify application (for OpenAPI generation and tests). */
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export const SANDBOX_API_VERSION = "0.1.0";
/** How long a request waits for a reconnecting agent before failing with 503. */
const AGENT_WAIT_MS = 5_000;

export function createSandboxApi(opts: SandboxApiOptions): SandboxApi {
  const logger = opts.logger;
  const info: SystemInfo = {
    version: opts.version ?? SANDBOX_API_VERSION,
    gitCommit: opts.gitCommit ?? "unknown",
    buildTime: opts.buildTime ?? new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024 * 1024,
    return503OnClosing: false,
    routerOptions: { maxParamLength: 64 * 1024, ignoreDuplicateSlashes: false, ignoreTrailingSlash: false },
  });

  // Every request and stream counts as sandbox activity until its response closes. Like Blaxel's
  // sandbox-api, responses allow any origin (auth is by header, never by cookie) and are not cached;
  // the headers go on the raw response so streamed (hijacked) replies carry them too.
  app.addHook("onRequest", async (req, reply) => {
    const s = svc(req);
    const done = s.beginActivity();
    reply.raw.once("close", done);
    reply.raw.setHeader("access-control-allow-origin", "*");
    reply.raw.setHeader("cache-control", "no-cache");
    // A request arriving while the agent reconnects (thaw, restore, server restart) waits for it.
    if (!s.agent.connected) await s.agent.waitConnected(AGENT_WAIT_MS).catch(() => undefined);
  });
  app.options("*", async (_req, reply) =>
    reply
      .status(204)
      .header("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
      .header("access-control-allow-headers", "*")
      .header("access-control-max-age", "86400")
      .send(),
  );

  // JSON bodies: an empty body is null (Blaxel's handlers accept a missing optional body);
  // multipart bodies stay unread for the routes that stream them.
  app.removeContentTypeParser(["application/json", "text/plain"]);
  app.addContentTypeParser(["application/json", "text/plain"], { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") return done(null, null);
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(new HangarError("invalid_json", `request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });
  app.addContentTypeParser("multipart/form-data", (_req, _payload, done) => done(null));

  app.setErrorHandler((err, req, reply) => {
    const he = toHangarError(err);
    if (he.status >= 500 && he.code !== "not_configured" && he.code !== "sandbox_unavailable") {
      logger.error({ err: he.cause ?? err, url: req.url, method: req.method }, "sandbox API request failed");
    }
    void reply.status(he.status).type(PROBLEM_CONTENT_TYPE).send(toProblem(he));
  });
  app.setNotFoundHandler((req, reply) => {
    const he = new HangarError("route_not_found", `no sandbox API route for ${req.method} ${req.url.split("?")[0]}`);
    void reply.status(404).type(PROBLEM_CONTENT_TYPE).send(toProblem(he));
  });

  void app.register(systemRoutes, info);
  void app.register(filesystemRoutes);
  void app.register(processRoutes);
  void app.register(networkRoutes);
  void app.register(driveRoutes);
  void app.register(codegenRoutes);
  void app.register(terminalPageRoutes);
  void app.register(async (mcp) => {
    mcp.post("/mcp", async (req, reply) => {
      const res = hijack(reply);
      try {
        await handleMcpRequest(req.raw, res, req.body ?? undefined, svc(req), info.version, logger);
      } catch (e) {
        sendRawProblem(res, e);
      }
    });
    const notAllowed = async () => {
      throw new HangarError("method_not_allowed", "the MCP endpoint is stateless: POST JSON-RPC requests to /mcp (no SSE stream, no sessions)");
    };
    mcp.get("/mcp", notAllowed);
    mcp.delete("/mcp", notAllowed);
  });

  const terminalUpgrade = createTerminalUpgrade(logger);
  let readyPromise: Promise<void> | null = null;
  const ready = () => (readyPromise ??= Promise.resolve(app.ready()).then(() => undefined));
  let isReady = false;
  void ready().then(() => (isReady = true), (e: unknown) => logger.error({ err: e }, "sandbox API failed to start"));

  return {
    app,
    ready,
    handle(req, res, services) {
      attachServices(req, services);
      // The SDK builds `${forcedUrl}/filesystem/...` from a URL that may end in "/" ("//filesystem/...").
      if (req.url?.startsWith("//")) req.url = req.url.replace(/^\/+/, "/");
      if (isReady && services.settled) {
        app.routing(req, res);
        return;
      }
      // first requests after a (re)start wait for the app and for the process table rebuilt from
      // the agent: a process must not read as finished, or its logs as cut, before that
      // (at most 15 s: a sandbox whose agent never comes back answers with what it has)
      Promise.all([ready(), Promise.race([services.ready, new Promise<void>((r) => setTimeout(r, 15_000).unref())])]).then(
        () => app.routing(req, res),
        (e: unknown) => sendRawProblem(res, e),
      );
    },
    handleUpgrade(req, socket, head, services) {
      try {
        terminalUpgrade(req, socket, head, services);
      } catch (e) {
        logger.warn({ err: e }, "WebSocket upgrade failed");
        socket.destroy();
      }
    },
    async close() {
      await app.close();
    },
  };
}
