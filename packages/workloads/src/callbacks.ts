// Async agent calls (`?async=true`): the result goes to the agent's `http-async` trigger's
// callbackUrl as Blaxel sends it — `{status_code, response_body, response_length, timestamp}`
// signed with HMAC-SHA256 of the raw body (`X-Blaxel-Signature: sha256=<hex>`, as
// `verifyWebhookFromRequest` of @blaxel/core checks), `X-Blaxel-Timestamp` in seconds — retried
// with backoff on connection errors and 5xx answers.

import { createHmac, randomBytes } from "node:crypto";
import { HangarError, type Logger, silentLogger } from "@hangar/common";

export interface CallbackTarget {
  url: string;
  secret: string;
}

export interface AsyncResult {
  statusCode: number;
  body: string;
}

/** A new callback secret (shown once, when the trigger is created). */
export function newCallbackSecret(): string {
  return randomBytes(32).toString("hex");
}

/** The body and headers of a callback, signed as @blaxel/core verifies them. */
export function signedCallback(result: AsyncResult, secret: string, now = Date.now()): { body: string; headers: Record<string, string> } {
  const timestamp = Math.floor(now / 1000);
  const body = JSON.stringify({ status_code: result.statusCode, response_body: result.body, response_length: Buffer.byteLength(result.body), timestamp });
  const signature = createHmac("sha256", secret).update(body).digest("hex");
  return { body, headers: { "content-type": "application/json", "x-blaxel-signature": `sha256=${signature}`, "x-blaxel-timestamp": String(timestamp) } };
}

export interface CallbackSenderOptions {
  /** Refuses targets the host must not call (its own addresses, sandboxes, metadata). */
  checkTarget: (url: URL) => Promise<void>;
  logger?: Logger;
  attempts?: number;
  /** First retry delay; doubles each time (default 1 s). */
  backoffMs?: number;
}

/** Delivers callbacks; never throws (failures are logged once retries run out). */
export class CallbackSender {
  private readonly log: Logger;
  constructor(private readonly opts: CallbackSenderOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  async send(target: CallbackTarget, result: AsyncResult): Promise<boolean> {
    const attempts = this.opts.attempts ?? 4;
    let delay = this.opts.backoffMs ?? 1_000;
    for (let i = 1; i <= attempts; i++) {
      try {
        const url = new URL(target.url);
        await this.opts.checkTarget(url);
        const { body, headers } = signedCallback(result, target.secret);
        const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(30_000), redirect: "manual" });
        if (res.status < 500) {
          if (res.status >= 400) this.log.warn({ url: url.origin, status: res.status }, "the callback target refused the result");
          return res.status < 400;
        }
      } catch (e) {
        // a target the guard refuses is final
        if (e instanceof HangarError) {
          this.log.warn({ err: e }, "callback target not allowed");
          return false;
        }
      }
      if (i < attempts) {
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
    this.log.warn({ url: new URL(target.url).origin }, "callback not delivered after retries");
    return false;
  }
}
