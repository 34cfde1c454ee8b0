// Output of one process, bounded. Output is written through to a file (records of
// [stream u8][length u32be][bytes]) up to `fileLimit` payload bytes, so it survives a server
// restart or crash; the most recent `memoryLimit` bytes are also kept in memory. Output between
// the file's end and the in-memory tail is dropped and replaced by one truncation marker. So the
// full log is always: the file, then the marker if anything was dropped, then the part of the
// recent output the file does not hold.

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
  /** Bytes of the first output kept in the file; output beyond it survives only in the memory tail. */
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

/**
 * The disk all process logs of one sandbox may use together. When a write would pass the limit,
 * `reclaim` is asked to free room (the process manager forgets its oldest finished processes);
 * what still does not fit is kept only in the in-memory tail.
 */
export class LogBudget {
  used = 0;

  constructor(
    readonly limit: number,
    private readonly reclaim: (bytes: number) => void = () => {},
  ) {}

  /** Bytes of `wanted` that may be written now (after reclaiming if needed). */
  grant(wanted: number): number {
    if (this.used + wanted > this.limit) this.reclaim(this.used + wanted - this.limit);
    return Math.max(0, Math.min(wanted, this.limit - this.used));
  }
}


/** What the log holds at one moment (reads render from it while appends go on). */
interface Snapshot {
  fileBytes: number;
  filePayload: number;
  total: number;
  recent: LogChunk[];
  recentBytes: number;
}

export class LogStore {
  private recent: LogChunk[] = [];
  private recentBytes = 0;
  /** Bytes of the file (records included) handed to the writer so far. */
  private fileBytes = 0;
  /** Payload bytes in the file. */
  private filePayload = 0;
  private fh: Promise<FileHandle> | null = null;
  private writeChain: Promise<void> = Promise.resolve();
  /** Records waiting for the next write (one write per batch). */
  private unwritten: Buffer[] = [];
  /** Output was left out of the file once: nothing later goes there (the file stays a prefix). */
  private fileFull = false;
  private listeners = new Set<(c: LogChunk) => void>();
  private endListeners = new Set<() => void>();
  private ended = false;
  private disposed = false;
  /** Total bytes ever appended. */
  totalBytes = 0;

  constructor(
    readonly file: string,
    private readonly limits: LogStoreLimits = DEFAULT_LOG_LIMITS,
    private readonly budget: LogBudget | null = null,
  ) {}

  /** Re-attaches to the file left by an earlier server process (same record key). */
  async adoptExisting(): Promise<void> {
    let buf: Buffer;
    try {
      buf = await readFile(this.file);
    } catch {
      return; // no earlier output
    }
    const chunks = parseRecords(buf);
    for (const c of chunks) {
      this.fileBytes += HEADER + c.data.length;
      this.filePayload += c.data.length;
    }
    this.totalBytes = this.filePayload;
    if (this.budget) this.budget.used += this.filePayload;
    // the end of the file is the recent output
    for (let i = chunks.length - 1; i >= 0 && this.recentBytes < this.limits.memoryLimit; i--) {
      this.recent.unshift(chunks[i]!);
      this.recentBytes += chunks[i]!.data.length;
    }
    this.trimRecent();
  }

  append(stream: LogStream, data: Buffer): void {
    if (data.length === 0 || this.disposed) return;
    const chunk: LogChunk = { stream, data };
    this.totalBytes += data.length;
    this.persist(chunk);
    this.recent.push(chunk);
    this.recentBytes += data.length;
    this.trimRecent();
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

  /** Drops the oldest in-memory output beyond `memoryLimit` (the file keeps what it has room for). */
  private trimRecent(): void {
    let over = this.recentBytes - this.limits.memoryLimit;
    while (over > 0 && this.recent.length > 0) {
      const first = this.recent[0]!;
      if (first.data.length <= over) {
        this.recent.shift();
        over -= first.data.length;
        this.recentBytes -= first.data.length;
      } else {
        this.recent[0] = { stream: first.stream, data: first.data.subarray(over) };
        this.recentBytes -= over;
        over = 0;
      }
    }
  }

  /** Writes a chunk (or what fits of it) to the file, batched with others still unwritten. */
  private persist(c: LogChunk): void {
    if (this.fileFull) return; // the file holds the first output only: nothing after a gap
    let room = Math.min(this.limits.fileLimit - this.filePayload, c.data.length);
    if (room > 0 && this.budget) room = this.budget.grant(room);
    if (room < c.data.length) this.fileFull = true;
    if (room <= 0) return;
    if (this.budget) this.budget.used += room;
    const data = c.data.length > room ? c.data.subarray(0, room) : c.data;
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = c.stream;
    header.writeUInt32BE(data.length, 1);
    this.filePayload += data.length;
    this.fileBytes += HEADER + data.length;
    if (this.unwritten.push(header, data) > 2) return; // a write is already queued
    if (!this.fh) this.fh = open(this.file, "a");
    const fh = this.fh;
    this.writeChain = this.writeChain
      .then(async () => {
        const batch = Buffer.concat(this.unwritten);
        this.unwritten = [];
        await (await fh).write(batch);
      })
      .catch(() => {
        /* a failing disk loses logged output, never the process */
      });
  }

  private snapshot(): Snapshot {
    return { fileBytes: this.fileBytes, filePayload: this.filePayload, total: this.totalBytes, recent: this.recent.slice(), recentBytes: this.recentBytes };
  }

  /** Chunks of a snapshot: the file, the truncation notice, the recent output the file lacks. */
  private async collect(snap: Snapshot): Promise<LogChunk[]> {
    let head: LogChunk[] = [];
    if (snap.fileBytes > 0) {
      await this.writeChain;
      try {
        const buf = await readFile(this.file);
        head = parseRecords(buf, Math.min(snap.fileBytes, buf.length));
      } catch {
        head = [];
      }
    }
    const tailStart = snap.total - snap.recentBytes;
    if (tailStart > snap.filePayload) head.push({ stream: 0, data: truncationNotice(tailStart - snap.filePayload) });
    let skip = Math.max(0, snap.filePayload - tailStart);
    for (const c of snap.recent) {
      if (skip >= c.data.length) {
        skip -= c.data.length;
        continue;
      }
      head.push(skip ? { stream: c.stream, data: c.data.subarray(skip) } : c);
      skip = 0;
    }
    return head;
  }

  /** Every retained chunk, in order. */
  async chunks(): Promise<LogChunk[]> {
    return this.collect(this.snapshot());
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
    const snap = this.snapshot();
    if (!this.ended) {
      this.listeners.add(listener);
      this.endListeners.add(endListener);
    }
    void this.collect(snap).then((backfill) => {
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

  /** Drops everything, including the file. */
  async dispose(): Promise<void> {
    if (this.budget && !this.disposed) this.budget.used -= this.filePayload;
    this.disposed = true;
    this.end();
    await this.writeChain;
    await rm(this.file, { force: true });
  }
}
