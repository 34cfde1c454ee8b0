// Streaming multipart/form-data reading (busboy): file parts are handed over as streams so their
// bytes go straight to the sandbox without being held whole in memory.

import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { Busboy } from "@fastify/busboy";
import { HangarError } from "@hangar/common";

export interface MultipartHandlers {
  /** Called for each file part, one at a time; the returned promise must consume `stream`. */
  onFile(field: string, filename: string, stream: Readable): Promise<void>;
  onField?(name: string, value: string): void;
}

export function readMultipart(req: IncomingMessage, handlers: MultipartHandlers): Promise<void> {
  const contentType = req.headers["content-type"];
  if (!contentType || !contentType.toLowerCase().startsWith("multipart/form-data")) {
    return Promise.reject(new HangarError("unsupported_media_type", "expected a multipart/form-data body"));
  }
  return new Promise<void>((resolve, reject) => {
    let bb: ReturnType<typeof Busboy>;
    try {
      bb = Busboy({ headers: { ...req.headers, "content-type": contentType }, limits: { fields: 32, fieldSize: 64 * 1024, parts: 64 } });
    } catch (e) {
      reject(new HangarError("bad_request", `invalid multipart body: ${(e as Error).message}`));
      return;
    }
    let failed = false;
    let chain: Promise<void> = Promise.resolve();
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      req.resume();
      reject(e);
    };
    bb.on("file", (field, stream, filename) => {
      if (failed) {
        stream.resume();
        return;
      }
      // Parts are processed in order; busboy pauses until each file stream is consumed.
      chain = chain.then(() => handlers.onFile(field, filename, stream)).catch((e: unknown) => {
        stream.resume();
        fail(e);
      });
    });
    bb.on("field", (name, value) => {
      if (!failed) chain = chain.then(() => handlers.onField?.(name, value));
    });
    bb.on("finish", () => {
      chain.then(() => {
        if (!failed) resolve();
      }, fail);
    });
    bb.on("error", (e: Error) => fail(new HangarError("bad_request", `invalid multipart body: ${e.message}`)));
    req.on("aborted", () => fail(new HangarError("bad_request", "request aborted")));
    req.pipe(bb);
  });
}

/** Reads a stream into write calls of about `size` bytes each (fewer agent round trips). */
export async function pumpCoalesced(stream: Readable, write: (b: Buffer) => Promise<void>, size = 512 * 1024): Promise<number> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    total += chunk.length;
    if (pendingBytes >= size) {
      const buf = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      await write(buf);
    }
  }
  if (pendingBytes > 0) await write(Buffer.concat(pending));
  return total;
}
