// Process routes (wire spec §5.3, §5.4 A/B): exec (JSON or NDJSON stream), list, get, stop, kill,
// logs, log stream, stdin.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import { hijack, StreamWriter, svc } from "../http.js";
import type { ExecRequest, ProcessRecord } from "../managers/process-manager.js";
import { identifierParams, processRequestSchema } from "../schemas.js";
import type { SandboxServices } from "../services.js";
import { ChunkDecoder, execEventLine, execResultLine, KEEPALIVE_LINE, LogLineFormatter } from "../util/stream-format.js";

/** Output retained in full in GET /process/{id}; beyond it the response carries recent output only. */
const FULL_LOGS_IN_GET = 1024 * 1024;
const STDIN_LIMIT = 8 * 1024 * 1024;
const PARTIAL_LINE_FLUSH_MS = 1000;

async function waitPorts(s: SandboxServices, rec: ProcessRecord, ports: number[]): Promise<void> {
  const deadline = Date.now() + s.limits.waitCapMs;
  const reason = await s.network.waitForPorts(ports, () => {
    if (!rec.running) return `process exited (status ${rec.status}, exit code ${rec.exitCode}) before port(s) ${ports.join(", ")} were listening`;
    if (Date.now() > deadline) return `port(s) ${ports.join(", ")} not listening on a routable address after ${Math.round(s.limits.waitCapMs / 1000)}s; the process keeps running (pid ${rec.pid})`;
    return null;
  });
  if (reason) throw new HangarError("unprocessable", reason, { pid: rec.pid, name: rec.name });
}

/** `POST /process` with `Accept: text/event-stream`: NDJSON of output, keepalives and the result. */
async function execStream(reply: FastifyReply, s: SandboxServices, body: ExecRequest): Promise<void> {
  const rec = await s.processes.exec(body);
  const out = new StreamWriter(hijack(reply), 200, { "content-type": "application/x-ndjson" });
  const decoder = new ChunkDecoder();
  let finished = false;
  const keepalive = setInterval(() => out.keepalive(execEventLine("keepalive")), s.limits.execKeepaliveMs);
  const cap = body.waitForCompletion ? setTimeout(() => void done(true), s.limits.waitCapMs) : undefined;
  const follow = rec.logs.follow(
    (chunk) => {
      const text = decoder.write(chunk);
      if (text) out.write(execEventLine(chunk.stream === 2 ? "stderr" : "stdout", text));
    },
    () => void done(false),
  );
  const stop = () => {
    clearInterval(keepalive);
    if (cap) clearTimeout(cap);
    follow.close();
  };
  out.onClose(stop);
  async function done(timedOut: boolean): Promise<void> {
    if (finished) return;
    finished = true;
    stop();
    for (const { stream, text } of decoder.flush()) out.write(execEventLine(stream === 2 ? "stderr" : "stdout", text));
    if (timedOut) {
      out.write(execEventLine("error", `process did not finish within ${Math.round(s.limits.waitCapMs / 1000)}s; it keeps running (pid ${rec.pid}), poll GET /process/${rec.pid}`));
    }
    try {
      out.end(execResultLine(await s.processes.toResponse(rec, { logs: "full" })));
    } catch (e) {
      out.end(execEventLine("error", (e as Error).message));
    }
  }
}

export async function processRoutes(app: FastifyInstance): Promise<void> {
  const list = async (req: FastifyRequest) => {
    const s = svc(req);
    return s.processes.list().map((r) => s.processes.shape(r, r.logs.tail(4096), { nullCompletedAt: true }));
  };
  app.get("/process", list);
  app.get("/process/", list);

  const exec = async (req: FastifyRequest<{ Body: ExecRequest }>, reply: FastifyReply) => {
    const s = svc(req);
    const body = req.body;
    if (req.headers.accept?.includes("text/event-stream")) return execStream(reply, s, body);
    const rec = await s.processes.exec(body);
    if (body.waitForPorts && body.waitForPorts.length > 0) await waitPorts(s, rec, body.waitForPorts);
    if (body.waitForCompletion) {
      // Stop waiting when the client goes away (the response closes before it is sent).
      const ac = new AbortController();
      reply.raw.once("close", () => ac.abort());
      const finished = await s.processes.waitForExit(rec, s.limits.waitCapMs, ac.signal);
      if (!finished && !ac.signal.aborted) {
        throw new HangarError(
          "unprocessable",
          `process did not finish within ${Math.round(s.limits.waitCapMs / 1000)}s; it keeps running (pid ${rec.pid}): poll GET /process/${rec.pid} or use process.wait()`,
          { pid: rec.pid, name: rec.name },
        );
      }
      return s.processes.toResponse(rec, { logs: "full" });
    }
    return s.processes.toResponse(rec, { logs: "tail" });
  };
  const execOpts = { schema: { body: processRequestSchema } };
  app.post<{ Body: ExecRequest }>("/process", execOpts, exec);
  app.post<{ Body: ExecRequest }>("/process/", execOpts, exec);

  app.get<{ Params: { identifier: string } }>("/process/:identifier", { schema: { params: identifierParams } }, async (req) => {
    const s = svc(req);
    const rec = s.processes.get(req.params.identifier);
    return s.processes.toResponse(rec, { logs: rec.logs.totalBytes <= FULL_LOGS_IN_GET ? "full" : "tail" });
  });

  app.delete<{ Params: { identifier: string } }>("/process/:identifier", { schema: { params: identifierParams } }, async (req) => {
    await svc(req).processes.stop(req.params.identifier);
    return { message: "Process stopped successfully" };
  });

  app.delete<{ Params: { identifier: string } }>("/process/:identifier/kill", { schema: { params: identifierParams } }, async (req) => {
    await svc(req).processes.kill(req.params.identifier);
    return { message: "Process killed successfully" };
  });

  app.get<{ Params: { identifier: string } }>("/process/:identifier/logs", { schema: { params: identifierParams } }, async (req) => {
    return svc(req).processes.get(req.params.identifier).logs.text();
  });

  app.get<{ Params: { identifier: string } }>("/process/:identifier/logs/stream", { schema: { params: identifierParams } }, async (req, reply) => {
    const s = svc(req);
    const rec = s.processes.get(req.params.identifier);
    const out = new StreamWriter(hijack(reply), 200, { "content-type": "text/plain; charset=utf-8" });
    const fmt = new LogLineFormatter();
    let idle: NodeJS.Timeout | undefined;
    const keepalive = setInterval(() => {
      if (!fmt.hasPartial) out.keepalive(KEEPALIVE_LINE);
    }, s.limits.streamKeepaliveMs);
    const follow = rec.logs.follow(
      (chunk) => {
        out.write(fmt.push(chunk));
        if (idle) clearTimeout(idle);
        idle = fmt.hasPartial ? setTimeout(() => out.write(fmt.flushPartial()), PARTIAL_LINE_FLUSH_MS) : undefined;
      },
      () => {
        cleanup();
        out.end(fmt.flushPartial(true));
      },
    );
    function cleanup() {
      clearInterval(keepalive);
      if (idle) clearTimeout(idle);
      follow.close();
    }
    out.onClose(cleanup);
  });

  // stdin: raw bytes whatever the Content-Type (the SDK sends them labelled application/json).
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: STDIN_LIMIT }, (_req, body, done) => done(null, body));
    raw.post<{ Params: { identifier: string } }>("/process/:identifier/stdin", { schema: { params: identifierParams }, bodyLimit: STDIN_LIMIT }, async (req) => {
      const data = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      await svc(req).processes.writeStdin(req.params.identifier, data);
      return { message: `Wrote ${data.length} bytes to stdin` };
    });
    raw.delete<{ Params: { identifier: string } }>("/process/:identifier/stdin", { schema: { params: identifierParams } }, async (req) => {
      await svc(req).processes.closeStdin(req.params.identifier);
      return { message: "Stdin closed" };
    });
  });
}
