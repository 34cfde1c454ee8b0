// The contract between the node (TypeScript) and the agent that runs as PID 1 inside every
// sandbox. The agent is the node's hands inside the sandbox's namespaces: it spawns processes,
// touches files with the sandbox's own view and rights, watches files and holds PTYs.
// Everything user-facing (HTTP, MCP, log storage, naming) lives in TypeScript on the node.

import type { EventEmitter } from "node:events";

/** File types as reported by stat/readdir. */
export type FileType = "file" | "directory" | "symlink" | "other";

export interface AgentStat {
  type: FileType;
  /** Full st_mode including type bits. */
  mode: number;
  size: number;
  uid: number;
  gid: number;
  /** Modification time, milliseconds since the epoch. */
  mtimeMs: number;
  /** Target of a symlink (lstat only). */
  linkTarget?: string;
}

export interface AgentDirEntry extends AgentStat {
  name: string;
}

export interface SpawnOptions {
  /** argv[0] is looked up in PATH of `env` when it has no slash. */
  argv: string[];
  /** The complete environment of the new process. */
  env: Record<string, string>;
  /** Absolute working directory inside the sandbox; spawn fails with ENOENT/ENOTDIR if missing. */
  cwd: string;
  uid?: number;
  gid?: number;
  /** Run under a new PTY of this size instead of pipes (stdout carries the PTY output, no stderr). */
  pty?: { cols: number; rows: number };
  /** Keep a stdin pipe open (otherwise stdin is /dev/null). Always true with a PTY. */
  stdin?: boolean;
  /** Opaque bytes the agent keeps with the process and returns from listProcesses(). */
  tag?: Buffer;
}

export interface AgentProcess {
  /** Agent-local handle, unique for the agent's lifetime. */
  id: number;
  /** PID inside the sandbox's PID namespace. */
  pid: number;
  tag: Buffer;
  running: boolean;
  /** Exit code when exited normally, else null. */
  exitCode: number | null;
  /** Terminating signal number when killed by a signal, else null. */
  signal: number | null;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: number | null;
}

export type WatchOp = "CREATE" | "WRITE" | "REMOVE" | "RENAME" | "CHMOD";

export interface WatchEvent {
  op: WatchOp;
  /** Directory containing the entry. */
  path: string;
  name: string;
}

export interface AgentInfo {
  version: string;
  /** PID of the agent in the sandbox (1 when it is init). */
  pid: number;
  hostname: string;
  /** Wire protocol version the agent speaks. */
  protocol?: number;
  /** Random id chosen when the agent started (16 hex digits); the same after reconnects and CRIU restore. */
  instance?: string;
}

/** Errors from the agent carry the errno name of the failed syscall. */
export interface AgentErrorLike extends Error {
  errno: string; // "ENOENT", "EACCES", "ENOTEMPTY", ...
}

export interface AgentClientEvents {
  /** Output of a process (stream 1 = stdout/PTY, 2 = stderr). */
  output: [id: number, stream: 1 | 2, data: Buffer];
  exit: [id: number, info: ExitInfo];
  watch: [watchId: number, event: WatchEvent];
  /**
   * The agent (re)connected. `processes` is the agent's process table at that moment; output
   * buffered while no host was connected is emitted as `output`/`exit` events right after this.
   */
  connect: [info: AgentInfo, processes: AgentProcess[]];
  disconnect: [];
}

/**
 * One connection to one sandbox's agent. Methods reject with an AgentErrorLike when the agent
 * reports a failure, and with an Error when the connection is gone.
 */
export interface AgentClient extends EventEmitter {
  readonly connected: boolean;
  /** Resolves once an agent is connected (immediately if it is), rejects after timeoutMs. */
  waitConnected(timeoutMs: number): Promise<AgentInfo>;
  info(): Promise<AgentInfo>;

  // processes
  /**
   * Starts a process; resolves once exec succeeded (exec/chdir/setuid failures reject with their
   * errno). Its `output`/`exit` events come no earlier than the macrotask after this resolves, so
   * handlers registered right after `await spawn()` miss nothing.
   */
  spawn(opts: SpawnOptions): Promise<{ id: number; pid: number }>;
  /** Signal the process group of process `id` (or only the process when group is false). Default group: true. */
  signal(id: number, signal: number | NodeJS.Signals, group?: boolean): Promise<void>;
  writeStdin(id: number, data: Buffer): Promise<void>;
  closeStdin(id: number): Promise<void>;
  resize(id: number, cols: number, rows: number): Promise<void>;
  /** All processes the agent holds, with output buffered while no client was connected. */
  listProcesses(): Promise<AgentProcess[]>;
  /** Forget an exited process. */
  release(id: number): Promise<void>;

  // files: paths are absolute inside the sandbox
  stat(path: string, opts?: { follow?: boolean }): Promise<AgentStat>;
  readdir(path: string): Promise<AgentDirEntry[]>;
  /** Reads up to `length` bytes (default: to the end, capped at 64 MiB) from `offset`. */
  readFile(path: string, opts?: { offset?: number; length?: number }): Promise<Buffer>;
  /** Creates or replaces a file; `mkdirs` creates missing parents with mode 0755. */
  writeFile(path: string, data: Buffer, opts?: { mode?: number; append?: boolean; mkdirs?: boolean }): Promise<void>;
  /** Opens a file for streamed writing (create/truncate unless append). */
  openFile(path: string, opts?: { mode?: number; append?: boolean; mkdirs?: boolean }): Promise<number>;
  writeChunk(handle: number, data: Buffer): Promise<void>;
  closeFile(handle: number): Promise<void>;
  mkdir(path: string, opts?: { mode?: number; recursive?: boolean }): Promise<void>;
  /** Removes a file or an empty directory, or a whole tree with recursive. */
  remove(path: string, opts?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  realpath(path: string): Promise<string>;

  // watch
  watch(path: string, opts?: { recursive?: boolean }): Promise<number>;
  unwatch(watchId: number): Promise<void>;

  /**
   * Ask the agent to drop this connection and stay quiet until signalled with SIGUSR1 or until
   * quietMs (default 10 s) pass (before a checkpoint). Resolves once the connection is closed.
   */
  detach(quietMs?: number): Promise<void>;
  /**
   * Asks the agent to replace itself with the binary at `path` (inside the sandbox), keeping its
   * processes, their pipes and buffered output. Resolves once the replaced agent is connected
   * again (same instance); rejects if the agent refused or did not come back within timeoutMs.
   */
  upgrade(path: string, timeoutMs?: number): Promise<AgentInfo>;
  /** One empty round trip to the agent. */
  ping(): Promise<void>;
  /** Stops listening and drops the connection. */
  close(): Promise<void>;
}
