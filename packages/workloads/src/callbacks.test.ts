import { createServer } from "node:http";
import { describe, expect, it } from "vitest";
import { HangarError } from "@hangar/common";
import { CallbackSender, signedCallback } from "./callbacks.js";

describe("async callbacks", () => {
  it("signs the raw body as @blaxel/core verifies it, lowercase hex, timestamp in seconds", async () => {
    const { verifyWebhookSignature } = await import("@blaxel/core");
    const { body, headers } = signedCallback({ statusCode: 201, body: '{"ok":true}' }, "s3cret", 1_735_891_200_123);
    expect(JSON.parse(body)).toEqual({ status_code: 201, response_body: '{"ok":true}', response_length: 11, timestamp: 1_735_891_200 });
    expect(headers["x-blaxel-signature"]).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(headers["x-blaxel-timestamp"]).toBe("1735891200");
    expect(verifyWebhookSignature({ body, signature: headers["x-blaxel-signature"]!, secret: "s3cret" })).toBe(true);
    expect(verifyWebhookSignature({ body, signature: headers["x-blaxel-signature"]!, secret: "other" })).toBe(false);
  });

  it("retries 5xx answers with backoff, stops at a 4xx, and never calls a refused target", async () => {
    const seen: number[] = [];
    const srv = createServer((req, res) => {
      seen.push(Date.now());
      res.statusCode = seen.length < 3 ? 503 : 200;
      req.resume();
      req.on("end", () => res.end());
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/cb`;
    try {
      const ok = await new CallbackSender({ checkTarget: async () => undefined, backoffMs: 20 }).send({ url, secret: "k" }, { statusCode: 200, body: "x" });
      expect(ok).toBe(true);
      expect(seen).toHaveLength(3);
      expect(seen[2]! - seen[1]!).toBeGreaterThanOrEqual(seen[1]! - seen[0]!);
      seen.length = 0;
      const refused = await new CallbackSender({
        checkTarget: async () => {
          throw new HangarError("forbidden", "not allowed");
        },
      }).send({ url, secret: "k" }, { statusCode: 200, body: "x" });
      expect(refused).toBe(false);
      expect(seen).toHaveLength(0);
    } finally {
      srv.close();
    }
  });
});
