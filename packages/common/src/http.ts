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
