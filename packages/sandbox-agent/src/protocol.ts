// Wire format of the agent protocol (see PROTOCOL.md): frame constants, a request encoder,
// a bounds-checked payload reader, a frame splitter and the agent's error type.

import { constants as osConstants } from "node:os";
import type { AgentDirEntry, AgentErrorLike, AgentProcess, AgentStat, FileType, WatchOp } from "./types.js";

export const PROTOCOL_VERSION = 1;
/** Header: u32 payload length, u8 type, u8 flags, u16 zero, u32 id (little-endian). */
export const HEADER_BYTES = 12;
/** Largest payload either side accepts. */
export const MAX_PAYLOAD = 8 * 1024 * 1024;
/** Largest READ the agent answers; larger reads are split by the client. */
export const READ_CHUNK = 4 * 1024 * 1024;
/** Writes larger than this go through open/write/close in chunks of this size. */
export const WRITE_CHUNK = 4 * 1024 * 1024;

export const Op = {
  PING: 0x01,
  INFO: 0x02,
  LIST: 0x03,
  SPAWN: 0x04,
  SIGNAL: 0x05,
  STDIN: 0x06,
  CLOSE_STDIN: 0x07,
  RESIZE: 0x08,
  RELEASE: 0x09,
  STAT: 0x10,
  READDIR: 0x11,
  READ: 0x12,
  WRITE_FILE: 0x13,
  OPEN: 0x14,
  WRITE: 0x15,
  CLOSE: 0x16,
  MKDIR: 0x17,
  REMOVE: 0x18,
  RENAME: 0x19,
  CHMOD: 0x1a,
  REALPATH: 0x1b,
  WATCH: 0x20,
  UNWATCH: 0x21,
  DETACH: 0x30,
  UPGRADE: 0x31,
} as const;

export const Msg = {
  HELLO: 0x40,
  OK: 0x41,
  ERR: 0x42,
  OUTPUT: 0x50,
  EXIT: 0x51,
  WATCH: 0x52,
} as const;

/** On an OK reply: more parts of the same reply follow. */
export const FLAG_MORE = 0x01;

export const SpawnFlag = { STDIN: 1, PTY: 2, UID: 4, GID: 8 } as const;
export const WriteFlag = { APPEND: 1, MKDIRS: 2, MODE: 4 } as const;

export const WATCH_OPS: readonly (WatchOp | undefined)[] = [undefined, "CREATE", "WRITE", "REMOVE", "RENAME", "CHMOD"];
const FILE_TYPES: readonly FileType[] = ["file", "directory", "symlink", "other"];

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);

/** errno number -> name ("ENOENT"), as the kernel and Node number them. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** A failure reported by the agent; `errno`/`code` carry the errno name of the failed syscall. */
export class AgentError extends Error implements AgentErrorLike {
  readonly errno: string;
  readonly code: string;
  readonly errnoNumber: number;
  constructor(errnoNumber: number, detail: string) {
    const name = errnoName(errnoNumber);
    super(detail ? `${name}: ${detail}` : name);
    this.name = "AgentError";
    this.errno = name;
    this.code = name;
    this.errnoNumber = errnoNumber;
  }
}

/** The frame or payload broke the protocol; the connection is dropped. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** Builds one request frame with a known payload size. */
export class FrameWriter {
  readonly buf: Buffer;
  private off = HEADER_BYTES;

  constructor(type: number, id: number, payloadBytes: number, extraBytes = 0) {
    this.buf = Buffer.allocUnsafe(HEADER_BYTES + payloadBytes);
    this.buf.writeUInt32LE(payloadBytes + extraBytes, 0);
    this.buf[4] = type;
    this.buf[5] = 0;
    this.buf.writeUInt16LE(0, 6);
    this.buf.writeUInt32LE(id, 8);
  }
  u8(v: number): this {
    this.buf[this.off++] = v;
    return this;
  }
  u16(v: number): this {
    this.buf.writeUInt16LE(v, this.off);
    this.off += 2;
    return this;
  }
  u32(v: number): this {
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }
  u64(v: number): this {
    this.buf.writeBigUInt64LE(BigInt(v), this.off);
    this.off += 8;
    return this;
  }
  /** u32 length + UTF-8 bytes; byteLength must be Buffer.byteLength(s). */
  str(s: string, byteLength: number): this {
    this.buf.writeUInt32LE(byteLength, this.off);
    this.buf.write(s, this.off + 4, byteLength, "utf8");
    this.off += 4 + byteLength;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.buf.writeUInt32LE(b.length, this.off);
    this.buf.set(b, this.off + 4);
    this.off += 4 + b.length;
    return this;
  }
  raw(b: Uint8Array): this {
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }
  done(): Buffer {
    if (this.off !== this.buf.length) throw new Error(`frame size mismatch: ${this.off} != ${this.buf.length}`);
    return this.buf;
  }
}

/** Bounds-checked reader over a payload from the (untrusted) agent. */
export class PayloadReader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new ProtocolError("truncated payload");
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
  u8(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.off);
    this.off += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.off);
    this.off += 8;
    return Number(v);
  }
  i64(): number {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.off);
    this.off += 8;
    return Number(v);
  }
  /** u64 as 16 hex digits (identifiers that must not lose precision). */
  u64Hex(): string {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.off);
    this.off += 8;
    return v.toString(16).padStart(16, "0");
  }
  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  str(): string {
    return this.bytes().toString("utf8");
  }
  rest(): Buffer {
    const b = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return b;
  }
}

export function readStat(r: PayloadReader): AgentStat {
  const type = FILE_TYPES[r.u8()] ?? "other";
  const hasLink = r.u8();
  const mode = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const size = r.u64();
  const mtimeS = r.i64();
  const mtimeNs = r.u32();
  const st: AgentStat = { type, mode, size, uid, gid, mtimeMs: mtimeS * 1000 + Math.floor(mtimeNs / 1e6) };
  if (hasLink) st.linkTarget = r.str();
  return st;
}

export function readDirEntries(payload: Buffer): AgentDirEntry[] {
  const r = new PayloadReader(payload);
  const out: AgentDirEntry[] = [];
  while (r.remaining > 0) {
    const name = r.str();
    out.push({ name, ...readStat(r) });
  }
  return out;
}

export function readProcesses(payload: Buffer): AgentProcess[] {
  const r = new PayloadReader(payload);
  const out: AgentProcess[] = [];
  while (r.remaining > 0) {
    const id = r.u32();
    const pid = r.u32();
    const running = r.u8() === 1;
    const code = r.i32();
    const sig = r.i32();
    const tag = Buffer.from(r.bytes());
    out.push({
      id,
      pid,
      tag,
      running,
      exitCode: running || code < 0 ? null : code,
      signal: running || sig === 0 ? null : sig,
    });
  }
  return out;
}

export interface Hello {
  protocol: number;
  pid: number;
  hostname: string;
  version: string;
  instance: string;
  token: string;
}

/** HELLO and INFO share this layout (HELLO adds the token). */
export function readInfo(r: PayloadReader): Omit<Hello, "token"> {
  const protocol = r.u32();
  const pid = r.u32();
  const hostname = r.str();
  const version = r.str();
  const instance = r.u64Hex();
  return { protocol, pid, hostname, version, instance };
}

/**
 * Splits a byte stream into frames. Complete frames inside one chunk are handed out as views of
 * that chunk (no copy); a frame spanning chunks is assembled once into its own buffer.
 */
export class FrameSplitter {
  private head = Buffer.allocUnsafe(HEADER_BYTES);
  private headLen = 0;
  private body: Buffer | null = null;
  private bodyLen = 0;
  private type = 0;
  private flags = 0;
  private id = 0;

  constructor(
    private readonly maxPayload: number,
    private readonly onFrame: (type: number, flags: number, id: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      if (this.body === null) {
        let len: number;
        if (this.headLen === 0 && n - off >= HEADER_BYTES) {
          len = chunk.readUInt32LE(off);
          this.type = chunk[off + 4]!;
          this.flags = chunk[off + 5]!;
          this.id = chunk.readUInt32LE(off + 8);
          off += HEADER_BYTES;
        } else {
          const take = Math.min(HEADER_BYTES - this.headLen, n - off);
          chunk.copy(this.head, this.headLen, off, off + take);
          this.headLen += take;
          off += take;
          if (this.headLen < HEADER_BYTES) return;
          this.headLen = 0;
          len = this.head.readUInt32LE(0);
          this.type = this.head[4]!;
          this.flags = this.head[5]!;
          this.id = this.head.readUInt32LE(8);
        }
        if (len > this.maxPayload) throw new ProtocolError(`frame of ${len} bytes exceeds the limit`);
        if (n - off >= len) {
          const payload = chunk.subarray(off, off + len);
          off += len;
          this.onFrame(this.type, this.flags, this.id, payload);
          continue;
        }
        this.body = Buffer.allocUnsafe(len);
        this.bodyLen = 0;
      }
      const take = Math.min(this.body.length - this.bodyLen, n - off);
      chunk.copy(this.body, this.bodyLen, off, off + take);
      this.bodyLen += take;
      off += take;
      if (this.bodyLen === this.body.length) {
        const payload = this.body;
        this.body = null;
        this.onFrame(this.type, this.flags, this.id, payload);
      }
    }
  }
}
