// Wire formats of the streaming endpoints (wire spec §5.4).

import { StringDecoder } from "node:string_decoder";
import type { LogChunk } from "../managers/log-store.js";

export type ExecEventType = "stdout" | "stderr" | "keepalive" | "result" | "error";

/** One NDJSON line of `POST /process` with `Accept: text/event-stream` (§5.4 A); `data` omitted when empty. */
export function execEventLine(type: ExecEventType, data?: string): string {
  return data === undefined || data === "" ? `{"type":"${type}"}\n` : `${JSON.stringify({ type, data })}\n`;
}

/** The `result` event: the ProcessResponse as a JSON string inside `data`. */
export function execResultLine(response: unknown): string {
  return execEventLine("result", JSON.stringify(response));
}

/** Per-stream UTF-8 decoding of raw chunks, so a multi-byte character split across chunks survives. */
export class ChunkDecoder {
  private readonly decoders = new Map<number, StringDecoder>();

  write(chunk: LogChunk): string {
    let d = this.decoders.get(chunk.stream);
    if (!d) {
      d = new StringDecoder("utf8");
      this.decoders.set(chunk.stream, d);
    }
    return d.write(chunk.data);
  }

  /** What is left in each stream's decoder (an incomplete trailing character). */
  flush(): Array<{ stream: number; text: string }> {
    const out: Array<{ stream: number; text: string }> = [];
    for (const [stream, d] of this.decoders) {
      const text = d.end();
      if (text) out.push({ stream, text });
    }
    return out;
  }
}

export const KEEPALIVE_LINE = "[keepalive]\n";

/**
 * Turns process output into the `GET /process/{id}/logs/stream` text format (§5.4 B): every complete
 * line prefixed with `stdout:` or `stderr:`, notices from Hangar unprefixed. Partial lines are held per
 * stream until their newline arrives, or until `flushPartial` (idle timer, process exit), so that a
 * prefix never lands in the middle of a line.
 */
export class LogLineFormatter {
  private readonly decoder = new ChunkDecoder();
  private readonly partial = new Map<number, string>();

  push(chunk: LogChunk): string {
    const text = this.decoder.write(chunk);
    if (chunk.stream === 0) {
      const notice = text.replace(/^\n+|\n+$/g, "");
      return notice ? `${this.flushPartial()}${notice}\n` : "";
    }
    const prefix = chunk.stream === 2 ? "stderr:" : "stdout:";
    const buffered = (this.partial.get(chunk.stream) ?? "") + text;
    const lastNl = buffered.lastIndexOf("\n");
    if (lastNl === -1) {
      this.partial.set(chunk.stream, buffered);
      return "";
    }
    this.partial.set(chunk.stream, buffered.slice(lastNl + 1));
    const complete = buffered.slice(0, lastNl);
    let out = "";
    for (const line of complete.split("\n")) out += `${prefix}${line}\n`;
    return out;
  }

  /** True when a partial line is waiting for its end. */
  get hasPartial(): boolean {
    for (const v of this.partial.values()) if (v) return true;
    return false;
  }

  /** Emits held partial lines as complete lines; `final` also drains incomplete UTF-8 sequences. */
  flushPartial(final = false): string {
    let out = "";
    if (final) {
      for (const { stream, text } of this.decoder.flush()) {
        this.partial.set(stream, (this.partial.get(stream) ?? "") + text);
      }
    }
    for (const [stream, text] of this.partial) {
      if (!text) continue;
      out += `${stream === 2 ? "stderr:" : "stdout:"}${text}\n`;
      this.partial.set(stream, "");
    }
    return out;
  }
}
