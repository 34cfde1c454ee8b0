import type { ServerResponse } from "node:http";
import { type HangarError, PROBLEM_CONTENT_TYPE, toProblem } from "./errors.js";

/** Writes an error as an RFC 9457 problem response on a raw Node response. */
export function sendProblem(res: ServerResponse, err: HangarError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(toProblem(err));
  res.writeHead(err.status, { "content-type": PROBLEM_CONTENT_TYPE, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Writes a JSON body on a raw Node response. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * Set on a response while it writes a keepalive. Whoever holds the request (the edge, which counts
 * what a response writes as sandbox activity) leaves those bytes out: a stream that only keeps
 * itself open does not keep the sandbox awake.
 */
const KEEPALIVE_WRITE = Symbol("hangar.keepaliveWrite");
type Flagged = ServerResponse & { [KEEPALIVE_WRITE]?: boolean };

/** Writes bytes that only keep the response open (not activity). */
export function writeKeepalive(res: ServerResponse, text: string): boolean {
  (res as Flagged)[KEEPALIVE_WRITE] = true;
  try {
    return res.write(text);
  } finally {
    (res as Flagged)[KEEPALIVE_WRITE] = false;
  }
}

/** True while the response is writing a keepalive (for wrappers of res.write). */
export function writingKeepalive(res: ServerResponse): boolean {
  return (res as Flagged)[KEEPALIVE_WRITE] === true;
}

/** The value of a named cookie in a Cookie header. */
export function readCookie(value: string | null | undefined, name: string): string | undefined {
  for (const c of (value ?? "").split(";")) {
    const eq = c.indexOf("=");
    if (eq > 0 && c.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(c.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
