// The host side of the agent protocol: listens on a per-sandbox unix socket, accepts the agent's
// connection (replacing an older one when the agent reconnects) and implements AgentClient.

import { timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { lstat, mkdir, chmod as fsChmod, unlink } from "node:fs/promises";
import net from "node:net";
import { constants as osConstants } from "node:os";
import { dirname } from "node:path";
import {
  AgentError,
  FLAG_MORE,
  FrameSplitter,
  FrameWriter,
  MAX_PAYLOAD,
  Msg,
  Op,
  PayloadReader,
  PROTOCOL_VERSION,
  ProtocolError,
  READ_CHUNK,
  SpawnFlag,
  WATCH_OPS,
  WRITE_CHUNK,
  WriteFlag,
  readDirEntries,
  readInfo,
  readProcesses,
  readStat,
} from "./protocol.js";
import type {
  AgentClient,
  AgentDirEntry,
  AgentInfo,
  AgentProcess,
  AgentStat,
  ExitInfo,
  SpawnOptions,
} from "./types.js";

export interface ListenOptions {
  /** Token the agent must present in its HELLO (it reads HANGAR_AGENT_TOKEN). Default: none required. */
  token?: string;
  /** A connection without a valid HELLO is dropped after this long. Default 2000 ms. */
  helloTimeoutMs?: number;
  /** Largest frame payload accepted from the agent. Default 8 MiB. */
  maxFrameBytes?: number;
  /** File mode of the socket. Default 0o600. */
  socketMode?: number;
  /** Receives protocol violations and rejected connections. Default: ignored. */
  onWarning?: (message: string) => void;
}

/** Largest readFile() without an explicit length. */
const READ_FILE_DEFAULT_MAX = 64 * 1024 * 1024;
const MAX_CANDIDATES = 8;

interface Pending {
  parse: (payload: Buffer) => void;
  reject: (err: Error) => void;
  parts?: Buffer[];
}

/** One accepted socket; it becomes the active connection after a valid HELLO and LIST. */
class Conn {
  readonly pending = new Map<number, Pending>();
  state: "hello" | "sync" | "ready" | "closed" = "hello";
  info: AgentInfo | null = null;
  helloTimer: NodeJS.Timeout | null = null;
  readonly splitter: FrameSplitter;
  constructor(
    readonly socket: net.Socket,
    maxPayload: number,
    onFrame: (c: Conn, type: number, flags: number, id: number, payload: Buffer) => void,
  ) {
    this.splitter = new FrameSplitter(maxPayload, (t, f, i, p) => onFrame(this, t, f, i, p));
  }
}

interface Waiter {
  resolve: (info: AgentInfo) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const byteLength = (s: string): number => Buffer.byteLength(s, "utf8");

function signalNumber(sig: number | string): number {
  if (typeof sig === "number") return sig;
  const n = (osConstants.signals as Record<string, number | undefined>)[sig];
  if (n === undefined) throw new TypeError(`unknown signal ${sig}`);
  return n;
}

function noNul(s: string, what: string): void {
  if (s.includes("\0")) throw new TypeError(`${what} contains a NUL byte`);
}

/**
 * AgentClient over the per-sandbox socket. Events of a process whose spawn() just resolved are
 * held until the next macrotask, so handlers registered right after `await spawn()` see them all.
 */
export class AgentSocketClient extends EventEmitter implements AgentClient {
  private active: Conn | null = null;
  private readonly candidates = new Set<Conn>();
  private nextId = 0;
  private waiters: Waiter[] = [];
  private fresh = new Map<number, (() => void)[]>();
  private freshScheduled = false;
  /**
   * Process events that arrived while nobody listened (an agent replaying buffered output right
   * after a server restart, before the services attach); replayed once a listener attaches.
   */
  private unheard: (() => void)[] = [];
  private unheardBytes = 0;
  private closed = false;
  private readonly maxPayload: number;

  constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly opts: ListenOptions = {},
  ) {
    super();
    this.maxPayload = opts.maxFrameBytes ?? MAX_PAYLOAD;
    this.on("newListener", (event: string) => {
      if ((event !== "output" && event !== "exit") || !this.unheard.length) return;
      // after the listener is added, and after its "exit" sibling registered in the same turn
      queueMicrotask(() => {
        const held = this.unheard;
        this.unheard = [];
        this.unheardBytes = 0;
        for (const fn of held) fn();
      });
    });
    server.on("connection", (s) => this.accept(s));
    server.on("error", (err) => this.warn(`agent socket error: ${err.message}`));
  }

  /** True while nobody listens to process events (or earlier ones still wait for the replay). */
  private unheardNow(): boolean {
    return this.unheard.length > 0 || (this.listenerCount("output") === 0 && this.listenerCount("exit") === 0);
  }

  /** Keeps an unheard event, up to 16 MiB of output (beyond that the process logs miss it). */
  private holdUnheard(fn: () => void, bytes: number): void {
    if (this.unheardBytes + bytes > 16 * 1024 * 1024) return;
    this.unheardBytes += bytes;
    this.unheard.push(fn);
  }

  get connected(): boolean {
    return this.active?.state === "ready";
  }

  /** The connected agent's HELLO, or null. */
  get agentInfo(): AgentInfo | null {
    return this.connected ? this.active!.info : null;
  }

  waitConnected(timeoutMs: number): Promise<AgentInfo> {
    if (this.connected) return Promise.resolve(this.active!.info!);
    if (this.closed) return Promise.reject(new Error("agent client is closed"));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`no agent connected within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  // ---- connection management ----

  private warn(msg: string): void {
    this.opts.onWarning?.(msg);
  }

  private accept(socket: net.Socket): void {
    if (this.closed || this.candidates.size >= MAX_CANDIDATES) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const c = new Conn(socket, this.maxPayload, (conn, t, f, i, p) => this.onFrame(conn, t, f, i, p));
    this.candidates.add(c);
    c.helloTimer = setTimeout(() => {
      this.warn("agent connection sent no valid HELLO in time");
      socket.destroy();
    }, this.opts.helloTimeoutMs ?? 2000);
    socket.on("data", (chunk: Buffer) => {
      if (c.state === "closed") return;
      try {
        c.splitter.push(chunk);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.warn(`agent protocol error: ${err.message}`);
        this.retire(c);
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => this.retire(c));
  }

  /** Ends a connection: rejects its requests and reports the disconnect if it was the active one. */
  private retire(c: Conn): void {
    if (c.state === "closed") return;
    const wasReady = c.state === "ready";
    c.state = "closed";
    if (c.helloTimer) clearTimeout(c.helloTimer);
    this.candidates.delete(c);
    c.socket.destroy();
    const err = new Error("agent connection lost");
    for (const p of c.pending.values()) p.reject(err);
    c.pending.clear();
    if (this.active === c) {
      this.active = null;
      if (wasReady) this.emit("disconnect");
    }
  }

  private onHello(c: Conn, payload: Buffer): void {
    const r = new PayloadReader(payload);
    const info = readInfo(r);
    const token = r.str();
    if (info.protocol !== PROTOCOL_VERSION) {
      this.warn(`agent speaks protocol ${info.protocol}, expected ${PROTOCOL_VERSION}`);
      this.retire(c);
      return;
    }
    const want = this.opts.token;
    if (want !== undefined) {
      const a = Buffer.from(token);
      const b = Buffer.from(want);
      if (a.length !== b.length || !timingSafeEqual(a, b)) {
        this.warn("agent connection presented a wrong token");
        this.retire(c);
        return;
      }
    }
    if (c.helloTimer) clearTimeout(c.helloTimer);
    c.helloTimer = null;
    this.candidates.delete(c);
    if (this.active) this.retire(this.active);
    this.active = c;
    c.state = "sync";
    c.info = { version: info.version, pid: info.pid, hostname: info.hostname, protocol: info.protocol, instance: info.instance };
    // LIST starts event delivery; its reply arrives before any buffered output.
    const id = this.allocId();
    c.pending.set(id, {
      parse: (p) => {
        const procs = readProcesses(p);
        c.state = "ready";
        const ws = this.waiters;
        this.waiters = [];
        this.emit("connect", c.info!, procs);
        for (const w of ws) {
          clearTimeout(w.timer);
          w.resolve(c.info!);
        }
      },
      reject: (err) => {
        this.warn(`agent handshake failed: ${err.message}`);
        this.retire(c);
      },
    });
    c.socket.write(new FrameWriter(Op.LIST, id, 0).done());
  }

  private onFrame(c: Conn, type: number, flags: number, id: number, payload: Buffer): void {
    if (c.state === "hello") {
      if (type !== Msg.HELLO) throw new ProtocolError(`expected HELLO, got frame type ${type}`);
      this.onHello(c, payload);
      return;
    }
    if (c.state === "closed") return;
    switch (type) {
      case Msg.OK: {
        const p = c.pending.get(id);
        if (!p) return;
        if (flags & FLAG_MORE) {
          (p.parts ??= []).push(payload);
          return;
        }
        c.pending.delete(id);
        const whole = p.parts ? Buffer.concat([...p.parts, payload]) : payload;
        try {
          p.parse(whole);
        } catch (err) {
          p.reject(err instanceof Error ? err : new Error(String(err)));
        }
        return;
      }
      case Msg.ERR: {
        const p = c.pending.get(id);
        if (!p) return;
        c.pending.delete(id);
        const r = new PayloadReader(payload);
        p.reject(new AgentError(r.u32(), r.str()));
        return;
      }
      case Msg.OUTPUT: {
        if (flags !== 1 && flags !== 2) throw new ProtocolError(`bad output stream ${flags}`);
        const stream = flags as 1 | 2;
        if (this.fresh.size && this.fresh.has(id)) this.fresh.get(id)!.push(() => this.emit("output", id, stream, payload));
        else if (this.unheardNow()) this.holdUnheard(() => this.emit("output", id, stream, payload), payload.length);
        else this.emit("output", id, stream, payload);
        return;
      }
      case Msg.EXIT: {
        const r = new PayloadReader(payload);
        const code = r.i32();
        const sig = r.i32();
        const info: ExitInfo = { exitCode: code >= 0 ? code : null, signal: sig > 0 ? sig : null };
        if (this.fresh.size && this.fresh.has(id)) this.fresh.get(id)!.push(() => this.emit("exit", id, info));
        else if (this.unheardNow()) this.holdUnheard(() => this.emit("exit", id, info), 0);
        else this.emit("exit", id, info);
        return;
      }
      case Msg.WATCH: {
        const op = WATCH_OPS[flags];
        if (!op) throw new ProtocolError(`bad watch op ${flags}`);
        const r = new PayloadReader(payload);
        const path = r.str();
        const name = r.str();
        this.emit("watch", id, { op, path, name });
        return;
      }
      default:
        throw new ProtocolError(`unexpected frame type ${type}`);
    }
  }

  /** Holds events of a just-spawned process until the next macrotask. */
  private markFresh(id: number): void {
    this.fresh.set(id, []);
    if (this.freshScheduled) return;
    this.freshScheduled = true;
    setImmediate(() => {
      this.freshScheduled = false;
      const held = this.fresh;
      this.fresh = new Map();
      for (const q of held.values()) for (const emit of q) emit();
    });
  }

  private allocId(): number {
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    return this.nextId;
  }

  /** Sends one request; `parse` runs synchronously when the reply frame arrives. */
  private request<T>(build: (id: number) => Buffer, parse: (payload: Buffer) => T, data?: Buffer): Promise<T> {
    const c = this.active;
    if (!c || c.state !== "ready") return Promise.reject(new Error("agent is not connected"));
    const id = this.allocId();
    const frame = build(id);
    return new Promise<T>((resolve, reject) => {
      c.pending.set(id, { parse: (p) => resolve(parse(p)), reject });
      if (data && data.length) {
        c.socket.cork();
        c.socket.write(frame);
        c.socket.write(data);
        c.socket.uncork();
      } else {
        c.socket.write(frame);
      }
    });
  }

  private empty = (): void => {};

  /** A request whose payload is one path (plus fixed fields written by `head`). */
  private pathRequest<T>(op: number, path: string, headBytes: number, head: (w: FrameWriter) => void, parse: (p: Buffer) => T): Promise<T> {
    const pl = byteLength(path);
    return this.request((id) => {
      const w = new FrameWriter(op, id, headBytes + 4 + pl);
      head(w);
      return w.str(path, pl).done();
    }, parse);
  }

  // ---- general ----

  info(): Promise<AgentInfo> {
    return this.request(
      (id) => new FrameWriter(Op.INFO, id, 0).done(),
      (p) => {
        const i = readInfo(new PayloadReader(p));
        return { version: i.version, pid: i.pid, hostname: i.hostname, protocol: i.protocol, instance: i.instance };
      },
    );
  }

  /** One empty round trip. */
  ping(): Promise<void> {
    return this.request((id) => new FrameWriter(Op.PING, id, 0).done(), this.empty);
  }

  // ---- processes ----

  spawn(opts: SpawnOptions): Promise<{ id: number; pid: number }> {
    const { argv, env, cwd } = opts;
    if (!argv.length) return Promise.reject(new TypeError("argv must not be empty"));
    const envs: string[] = [];
    for (const [k, v] of Object.entries(env)) {
      if (!k || k.includes("=")) return Promise.reject(new TypeError(`invalid environment variable name ${JSON.stringify(k)}`));
      envs.push(`${k}=${v}`);
    }
    try {
      noNul(cwd, "cwd");
      for (const a of argv) noNul(a, "argv");
      for (const e of envs) noNul(e, "env");
    } catch (err) {
      return Promise.reject(err);
    }
    const tag = opts.tag ?? Buffer.alloc(0);
    let flags = 0;
    if (opts.pty) flags |= SpawnFlag.PTY | SpawnFlag.STDIN;
    if (opts.stdin) flags |= SpawnFlag.STDIN;
    if (opts.uid !== undefined) flags |= SpawnFlag.UID;
    if (opts.gid !== undefined) flags |= SpawnFlag.GID;
    const cwdB = byteLength(cwd);
    const argvB = argv.map(byteLength);
    const envB = envs.map(byteLength);
    let size = 16 + 4 + cwdB + 4 + 4 + 4 + tag.length;
    for (const n of argvB) size += 4 + n;
    for (const n of envB) size += 4 + n;
    return this.request(
      (id) => {
        const w = new FrameWriter(Op.SPAWN, id, size);
        w.u32(flags).u32(opts.uid ?? 0).u32(opts.gid ?? 0).u16(opts.pty?.cols ?? 0).u16(opts.pty?.rows ?? 0);
        w.str(cwd, cwdB).u32(argv.length);
        for (let i = 0; i < argv.length; i++) w.str(argv[i]!, argvB[i]!);
        w.u32(envs.length);
        for (let i = 0; i < envs.length; i++) w.str(envs[i]!, envB[i]!);
        return w.bytes(tag).done();
      },
      (p) => {
        const r = new PayloadReader(p);
        const id = r.u32();
        const pid = r.u32();
        this.markFresh(id);
        return { id, pid };
      },
    );
  }

  signal(id: number, signal: number | NodeJS.Signals, group = true): Promise<void> {
    let sig: number;
    try {
      sig = signalNumber(signal);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.request((rid) => new FrameWriter(Op.SIGNAL, rid, 9).u32(id).u32(sig).u8(group ? 1 : 0).done(), this.empty);
  }

  async writeStdin(id: number, data: Buffer): Promise<void> {
    let off = 0;
    do {
      const part = data.subarray(off, off + WRITE_CHUNK);
      await this.request((rid) => new FrameWriter(Op.STDIN, rid, 4, part.length).u32(id).done(), this.empty, part);
      off += WRITE_CHUNK;
    } while (off < data.length);
  }

  closeStdin(id: number): Promise<void> {
    return this.request((rid) => new FrameWriter(Op.CLOSE_STDIN, rid, 4).u32(id).done(), this.empty);
  }

  resize(id: number, cols: number, rows: number): Promise<void> {
    return this.request((rid) => new FrameWriter(Op.RESIZE, rid, 8).u32(id).u16(cols).u16(rows).done(), this.empty);
  }

  listProcesses(): Promise<AgentProcess[]> {
    return this.request((id) => new FrameWriter(Op.LIST, id, 0).done(), readProcesses);
  }

  release(id: number): Promise<void> {
    return this.request((rid) => new FrameWriter(Op.RELEASE, rid, 4).u32(id).done(), this.empty);
  }

  // ---- files ----

  stat(path: string, opts: { follow?: boolean } = {}): Promise<AgentStat> {
    return this.pathRequest(Op.STAT, path, 1, (w) => w.u8(opts.follow === false ? 0 : 1), (p) => readStat(new PayloadReader(p)));
  }

  readdir(path: string): Promise<AgentDirEntry[]> {
    return this.pathRequest(Op.READDIR, path, 0, () => {}, readDirEntries);
  }

  async readFile(path: string, opts: { offset?: number; length?: number } = {}): Promise<Buffer> {
    let pos = opts.offset ?? 0;
    let remaining = Math.min(opts.length ?? READ_FILE_DEFAULT_MAX, READ_FILE_DEFAULT_MAX);
    const parts: Buffer[] = [];
    while (remaining > 0) {
      const want = Math.min(remaining, READ_CHUNK);
      const { size, data } = await this.pathRequest(Op.READ, path, 12, (w) => w.u64(pos).u32(want), (p) => {
        const r = new PayloadReader(p);
        return { size: r.u64(), data: r.rest() };
      });
      parts.push(data);
      pos += data.length;
      remaining -= data.length;
      if (data.length < want || (size > 0 && pos >= size)) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private writeFlags(opts: { mode?: number; append?: boolean; mkdirs?: boolean }): number {
    return (opts.append ? WriteFlag.APPEND : 0) | (opts.mkdirs ? WriteFlag.MKDIRS : 0) | (opts.mode !== undefined ? WriteFlag.MODE : 0);
  }

  async writeFile(path: string, data: Buffer, opts: { mode?: number; append?: boolean; mkdirs?: boolean } = {}): Promise<void> {
    if (data.length > WRITE_CHUNK) {
      const h = await this.openFile(path, opts);
      try {
        await this.writeChunk(h, data);
      } catch (err) {
        await this.closeFile(h).catch(() => {});
        throw err;
      }
      return this.closeFile(h);
    }
    const pl = byteLength(path);
    const flags = this.writeFlags(opts);
    return this.request(
      (id) => new FrameWriter(Op.WRITE_FILE, id, 12 + pl, data.length).u32(flags).u32(opts.mode ?? 0).str(path, pl).done(),
      this.empty,
      data,
    );
  }

  openFile(path: string, opts: { mode?: number; append?: boolean; mkdirs?: boolean } = {}): Promise<number> {
    const flags = this.writeFlags(opts);
    return this.pathRequest(Op.OPEN, path, 8, (w) => w.u32(flags).u32(opts.mode ?? 0), (p) => new PayloadReader(p).u32());
  }

  async writeChunk(handle: number, data: Buffer): Promise<void> {
    for (let off = 0; off < data.length; off += WRITE_CHUNK) {
      const part = data.subarray(off, off + WRITE_CHUNK);
      await this.request((id) => new FrameWriter(Op.WRITE, id, 4, part.length).u32(handle).done(), this.empty, part);
    }
  }

  closeFile(handle: number): Promise<void> {
    return this.request((id) => new FrameWriter(Op.CLOSE, id, 4).u32(handle).done(), this.empty);
  }

  mkdir(path: string, opts: { mode?: number; recursive?: boolean } = {}): Promise<void> {
    return this.pathRequest(Op.MKDIR, path, 8, (w) => w.u32(opts.recursive ? 1 : 0).u32(opts.mode ?? 0o755), this.empty);
  }

  remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return this.pathRequest(Op.REMOVE, path, 1, (w) => w.u8(opts.recursive ? 1 : 0), this.empty);
  }

  rename(from: string, to: string): Promise<void> {
    const fl = byteLength(from);
    const tl = byteLength(to);
    return this.request((id) => new FrameWriter(Op.RENAME, id, 8 + fl + tl).str(from, fl).str(to, tl).done(), this.empty);
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.pathRequest(Op.CHMOD, path, 4, (w) => w.u32(mode), this.empty);
  }

  realpath(path: string): Promise<string> {
    return this.pathRequest(Op.REALPATH, path, 0, () => {}, (p) => new PayloadReader(p).str());
  }

  // ---- watch ----

  watch(path: string, opts: { recursive?: boolean } = {}): Promise<number> {
    return this.pathRequest(Op.WATCH, path, 1, (w) => w.u8(opts.recursive ? 1 : 0), (p) => new PayloadReader(p).u32());
  }

  unwatch(watchId: number): Promise<void> {
    return this.request((id) => new FrameWriter(Op.UNWATCH, id, 4).u32(watchId).done(), this.empty);
  }

  // ---- lifecycle ----

  /**
   * Asks the agent to drop this connection (and its relayed connections) and stay away until it
   * gets SIGUSR1 or quietMs pass. Resolves once the connection is closed.
   */
  async upgrade(path: string, timeoutMs = 10_000): Promise<AgentInfo> {
    const c = this.active;
    const before = c?.info?.instance;
    await this.pathRequest(Op.UPGRADE, path, 0, () => {}, this.empty);
    // the agent drops this connection before its exec; the new binary connects again
    if (c && c.state !== "closed") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        c.socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const info = await this.waitConnected(timeoutMs);
    if (before && info.instance !== before) throw new Error("a different agent connected after the upgrade");
    return info;
  }

  async detach(quietMs = 10_000): Promise<void> {
    const c = this.active;
    await this.request((id) => new FrameWriter(Op.DETACH, id, 4).u32(quietMs).done(), this.empty);
    if (!c || c.state === "closed") return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.retire(c);
        resolve();
      }, 5000);
      c.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.candidates]) this.retire(c);
    if (this.active) this.retire(this.active);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error("agent client is closed"));
    }
    this.waiters = [];
    await closing;
    await unlink(this.socketPath).catch(() => {});
  }
}

/**
 * Creates the per-sandbox socket (replacing a stale one) and returns a client that serves the
 * agent whenever it connects. The agent is expected at `--socket <path as seen in the sandbox>`.
 */
export async function listenForAgent(socketPath: string, opts: ListenOptions = {}): Promise<AgentSocketClient> {
  await mkdir(dirname(socketPath), { recursive: true });
  const st = await lstat(socketPath).catch(() => null);
  if (st) {
    if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
    await unlink(socketPath);
  }
  const server = net.createServer({ pauseOnConnect: false });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await fsChmod(socketPath, opts.socketMode ?? 0o600);
  return new AgentSocketClient(server, socketPath, opts);
}
