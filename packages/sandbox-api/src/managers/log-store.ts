// Output of one process, bounded in memory. The most recent `memoryLimit` bytes stay in memory;
// older output spills to a file (records of [stream u8][length u32be][bytes]) up to `fileLimit`
// bytes, beyond which it is dropped and replaced by one truncation marker. So the full log is
// always: file content, then the marker if anything was dropped, then the in-memory recent part.

import { open, readFile, rm, stat, type FileHandle } from "node:fs/promises";

/** 1 = stdout, 2 = stderr, 0 = a notice from Hangar (restart, termination, truncation). */
export type LogStream = 0 | 1 | 2;

export interface LogChunk {
  stream: LogStream;
  data: Buffer;
}

export interface LogStoreLimits {
  /** Bytes of most recent output kept in memory. */
  memoryLimit: number;
  /** Bytes of older output kept in the spill file; older output beyond it is dropped. */
  fileLimit: number;
}

export const DEFAULT_LOG_LIMITS: LogStoreLimits = { memoryLimit: 64 * 1024, fileLimit: 16 * 1024 * 1024 };

export interface LogText {
  logs: string;
  stdout: string;
  stderr: string;
}

const HEADER = 5;

export function truncationNotice(droppedBytes: number): Buffer {
  return Buffer.from(`\n[hangar: ${droppedBytes} bytes of output omitted here; the log keeps the first and the most recent output]\n`);
}

/** Renders chunks into the three views of the API: combined, stdout (+ notices) and stderr. */
export function renderChunks(chunks: LogChunk[]): LogText {
  const all: Buffer[] = [];
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for (const c of chunks) {
    all.push(c.data);
    if (c.stream === 2) err.push(c.data);
    else if (c.stream === 1) out.push(c.data);
    else {
      out.push(c.data);
      err.push(c.data);
    }
  }
  return {
    logs: Buffer.concat(all).toString("utf8"),
    stdout: Buffer.concat(out).toString("utf8"),
    stderr: Buffer.concat(err).toString("utf8"),
  };
}

function parseRecords(buf: Buffer, limit = buf.length): LogChunk[] {
  const chunks: LogChunk[] = [];
  let off = 0;
  while (off + HEADER <= limit) {
    const stream = buf[off]! as LogStream;
    const len = buf.readUInt32BE(off + 1);
    if (off + HEADER + len > limit) break;
    chunks.push({ stream, data: buf.subarray(off + HEADER, off + HEADER + len) });
    off += HEADER + len;
  }
  return chunks;
}

export type FollowHandle = { close(): void };

export class LogStore {
  private recent: LogChunk[] = [];
  private recentBytes = 0;
  /** Bytes of the spill file (records included) handed to the writer so far. */
  private fileBytes = 0;
  /** Payload bytes in the spill file. */
  private filePayload = 0;
  private dropped = 0;
  private fh: Promise<FileHandle> | null = null;
  private writeChain: Promise<void> = Promise.resolve();
  private listeners = new Set<(c: LogChunk) => void>();
  private endListeners = new Set<() => void>();
  private ended = false;
  private disposed = false;
  /** Total bytes ever appended. */
  totalBytes = 0;

  constructor(
    readonly file: string,
    private readonly limits: LogStoreLimits = DEFAULT_LOG_LIMITS,
  ) {}

  /** Re-attaches to a spill file left by an earlier server process (same record key). */
  async adoptExisting(): Promise<void> {
    try {
      const st = await stat(this.file);
      this.fileBytes = st.size;
      this.filePayload = st.size;
      this.totalBytes = st.size;
    } catch {
      /* no earlier output */
    }
  }

  append(stream: LogStream, data: Buffer): void {
    if (data.length === 0 || this.disposed) return;
    const chunk: LogChunk = { stream, data };
    this.totalBytes += data.length;
    this.recent.push(chunk);
    this.recentBytes += data.length;
    this.evict();
    for (const l of this.listeners) l(chunk);
  }

  /** No more output will come: followers finish after delivering what is left. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const l of this.endListeners) l();
    this.endListeners.clear();
    this.listeners.clear();
    // Release the file handle; reads use readFile from then on.
    const fh = this.fh;
    if (fh) this.writeChain = this.writeChain.then(async () => (await fh).close()).catch(() => {});
    this.fh = null;
  }

  /** Moves the oldest in-memory output beyond `memoryLimit` to the spill file. */
  private evict(): void {
    const over = this.recentBytes - this.limits.memoryLimit;
    if (over <= 0) return;
    let toEvict = over;
    const evicted: LogChunk[] = [];
    while (toEvict > 0 && this.recent.length > 0) {
      const first = this.recent[0]!;
      if (first.data.length <= toEvict) {
        this.recent.shift();
        evicted.push(first);
        toEvict -= first.data.length;
        this.recentBytes -= first.data.length;
      } else {
        evicted.push({ stream: first.stream, data: first.data.subarray(0, toEvict) });
        this.recent[0] = { stream: first.stream, data: first.data.subarray(toEvict) };
        this.recentBytes -= toEvict;
        toEvict = 0;
      }
    }
    this.spill(evicted);
  }

  private spill(chunks: LogChunk[]): void {
    const parts: Buffer[] = [];
    for (const c of chunks) {
      const room = this.limits.fileLimit - this.filePayload;
      if (room <= 0) {
        this.dropped += c.data.length;
        continue;
      }
      const data = c.data.length > room ? c.data.subarray(0, room) : c.data;
      this.dropped += c.data.length - data.length;
      const header = Buffer.allocUnsafe(HEADER);
      header[0] = c.stream;
      header.writeUInt32BE(data.length, 1);
      parts.push(header, data);
      this.filePayload += data.length;
      this.fileBytes += HEADER + data.length;
    }
    if (parts.length === 0) return;
    const payload = Buffer.concat(parts);
    if (!this.fh) this.fh = open(this.file, "a");
    const fh = this.fh;
    this.writeChain = this.writeChain
      .then(async () => {
        const h = await fh;
        await h.write(payload);
      })
      .catch(() => {
        /* a failing disk loses spilled output, never the process */
      });
  }

  /** Chunks as they are now: spilled head, truncation notice, recent output. */
  private async collect(fileLimit: number, dropped: number, recent: LogChunk[]): Promise<LogChunk[]> {
    let head: LogChunk[] = [];
    if (fileLimit > 0) {
      await this.writeChain;
      try {
        const buf = await readFile(this.file);
        head = parseRecords(buf, Math.min(fileLimit, buf.length));
      } catch {
        head = [];
      }
    }
    if (dropped > 0) head.push({ stream: 0, data: truncationNotice(dropped) });
    return head.concat(recent);
  }

  /** Every retained chunk, in order. */
  async chunks(): Promise<LogChunk[]> {
    return this.collect(this.fileBytes, this.dropped, this.recent.slice());
  }

  async text(): Promise<LogText> {
    return renderChunks(await this.chunks());
  }

  /** The most recent output (up to `memoryLimit` bytes, or `maxBytes` of it), synchronously. */
  tail(maxBytes?: number): LogText {
    if (maxBytes === undefined || this.recentBytes <= maxBytes) return renderChunks(this.recent);
    const out: LogChunk[] = [];
    let left = maxBytes;
    for (let i = this.recent.length - 1; i >= 0 && left > 0; i--) {
      const c = this.recent[i]!;
      out.unshift(c.data.length <= left ? c : { stream: c.stream, data: c.data.subarray(c.data.length - left) });
      left -= c.data.length;
    }
    return renderChunks(out);
  }

  /**
   * Delivers every retained chunk, then live chunks as they arrive, without gaps or duplicates;
   * `onEnd` runs once everything is delivered and the store has ended.
   */
  follow(onChunk: (c: LogChunk) => void, onEnd: () => void): FollowHandle {
    let closed = false;
    let live = false;
    const pending: LogChunk[] = [];
    let endSeen = this.ended;
    const listener = (c: LogChunk) => {
      if (closed) return;
      if (live) onChunk(c);
      else pending.push(c);
    };
    const endListener = () => {
      endSeen = true;
      if (live && !closed) {
        closed = true;
        onEnd();
      }
    };
    const fileBytes = this.fileBytes;
    const dropped = this.dropped;
    const recent = this.recent.slice();
    if (!this.ended) {
      this.listeners.add(listener);
      this.endListeners.add(endListener);
    }
    void this.collect(fileBytes, dropped, recent).then((backfill) => {
      if (closed) return;
      for (const c of backfill) onChunk(c);
      for (const c of pending) onChunk(c);
      pending.length = 0;
      live = true;
      if (endSeen && !closed) {
        closed = true;
        onEnd();
      }
    });
    return {
      close: () => {
        closed = true;
        this.listeners.delete(listener);
        this.endListeners.delete(endListener);
      },
    };
  }

  /** Drops everything, including the spill file. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.end();
    await this.writeChain;
    await rm(this.file, { force: true });
  }
}
