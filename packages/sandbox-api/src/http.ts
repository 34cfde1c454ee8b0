// Transport helpers shared by the routes: the sandbox a request is for, path parameters read from
// the raw URL, query parsing, problem responses and streaming responses.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { HangarError, PROBLEM_CONTENT_TYPE, asHangarError, toProblem, writeKeepalive } from "@hangar/common";
import { rawPathAfter, resolveRawPathParam } from "./paths.js";
import type { SandboxServices } from "./services.js";

const SERVICES = Symbol.for("hangar.sandboxServices");

type WithServices = IncomingMessage & { [SERVICES]?: SandboxServices };

export function attachServices(req: IncomingMessage, services: SandboxServices): void {
  (req as WithServices)[SERVICES] = services;
}

/** The services of the sandbox this request targets (attached by `handle`). */
export function svc(req: FastifyRequest | IncomingMessage): SandboxServices {
  const raw = ("raw" in req ? req.raw : req) as WithServices;
  const s = raw[SERVICES];
  if (!s) throw new HangarError("sandbox_unavailable", "no sandbox is attached to this request");
  return s;
}

/**
 * The absolute sandbox path named by the URL after `prefix` (e.g. "/filesystem/"), read from the raw
 * URL so an encoded slash (%2F) can be told from a real one (wire spec §5.2).
 */
export function pathParam(req: FastifyRequest, prefix: string): string {
  const raw = rawPathAfter(req.raw.url ?? "", prefix);
  if (raw === undefined) throw new HangarError("invalid_path", `expected a path after ${prefix}`);
  return resolveRawPathParam(raw, svc(req).paths);
}

/** Raw (still encoded) text of the URL after `prefix`. */
export function rawParam(req: FastifyRequest, prefix: string): string {
  return rawPathAfter(req.raw.url ?? "", prefix) ?? "";
}

// ---- query values (schemas coerce types; these keep the Go handlers' lenient defaults) ---------

export function queryBool(v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null || v === "") return dflt;
  if (typeof v === "boolean") return v;
  return String(v).toLowerCase() === "true" || v === "1";
}

export function queryInt(v: unknown, dflt: number): number {
  if (v === undefined || v === null || v === "") return dflt;
  const n = typeof v === "number" ? v : Number.parseInt(String(v), 10);
  return Number.isFinite(n) ? Math.trunc(n) : dflt;
}

export function queryNumber(v: unknown, dflt: number): number {
  if (v === undefined || v === null || v === "") return dflt;
  const n = typeof v === "number" ? v : Number(String(v));
  return Number.isFinite(n) ? n : dflt;
}

// ---- errors -------------------------------------------------------------------------------------

/** Maps anything thrown by a route or by Fastify to a HangarError. */
export function toHangarError(err: unknown): HangarError {
  if (err instanceof HangarError) return err;
  const fe = err as FastifyError & { validationContext?: string; validation?: Array<{ instancePath: string; message?: string; keyword: string; params: Record<string, unknown> }> };
  if (fe && Array.isArray(fe.validation)) {
    const v = fe.validation[0];
    const where = `${fe.validationContext ?? "body"}${(v?.instancePath ?? "").replace(/\//g, ".")}`;
    let what = v?.message ?? "is invalid";
    if (v?.keyword === "required") what = `missing field ${JSON.stringify(v.params.missingProperty)}`;
    if (v?.keyword === "additionalProperties") what = `unknown field ${JSON.stringify(v.params.additionalProperty)}`;
    return new HangarError("validation_failed", `${where}: ${what}`);
  }
  switch (fe?.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new HangarError("invalid_json", `request body is not valid JSON: ${fe.message}`);
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new HangarError("payload_too_large", "request body is larger than this endpoint accepts");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new HangarError("unsupported_media_type", fe.message);
  }
  if (err instanceof SyntaxError) return new HangarError("invalid_json", `request body is not valid JSON: ${err.message}`);
  if (fe?.statusCode === 413) return new HangarError("payload_too_large", "request body is larger than this endpoint accepts");
  if (fe?.statusCode === 415) return new HangarError("unsupported_media_type", fe.message);
  if (fe?.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new HangarError("bad_request", fe.message);
  return asHangarError(err);
}

/** Writes a problem on a raw response (for hijacked routes); ends a started stream instead. */
export function sendRawProblem(res: ServerResponse, err: unknown): void {
  const he = toHangarError(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = JSON.stringify(toProblem(he));
  res.writeHead(he.status, { "content-type": PROBLEM_CONTENT_TYPE, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

// ---- streaming ----------------------------------------------------------------------------------

/** A hijacked streaming response: writes respect backpressure, `closed` flips when the client leaves. */
export class StreamWriter {
  closed = false;
  private readonly closeHandlers: Array<() => void> = [];

  constructor(
    readonly res: ServerResponse,
    status: number,
    headers: Record<string, string>,
  ) {
    res.writeHead(status, { "cache-control": "no-cache", "x-accel-buffering": "no", ...headers });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    const onClose = () => {
      if (this.closed) return;
      this.closed = true;
      for (const h of this.closeHandlers) h();
    };
    res.on("close", onClose);
    res.on("error", onClose);
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHandlers.push(fn);
  }

  write(text: string): boolean {
    if (this.closed || text === "") return true;
    return this.res.write(text);
  }

  /** Writes bytes that only keep the connection open (not activity, see writeKeepalive). */
  keepalive(text: string): boolean {
    if (this.closed || text === "") return true;
    return writeKeepalive(this.res, text);
  }

  end(text?: string): void {
    if (this.closed) return;
    if (text) this.res.write(text);
    this.res.end();
  }
}

/** Takes the raw response over from Fastify (streams, downloads, MCP); the caller answers errors itself. */
export function hijack(reply: FastifyReply): ServerResponse {
  reply.hijack();
  return reply.raw;
}
