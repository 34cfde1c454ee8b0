// Test harness: runs the real agent binary as a host process (optionally under unshare or in a
// chroot) against a real AgentSocketClient, and collects process output by id.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { agentBinaryPath, listenForAgent, type AgentSocketClient, type ListenOptions } from "../src/index.js";
import type { ExitInfo, SpawnOptions } from "../src/types.js";

let built = false;
/** Builds the agent (fast when up to date). */
export function ensureBuilt(): void {
  if (built) return;
  execFileSync("make", ["-s", "-C", fileURLToPath(new URL("../native", import.meta.url))], { stdio: "inherit" });
  built = true;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until check() is truthy. */
export async function waitFor<T>(check: () => T | undefined | false | null, timeoutMs = 3000, what = "condition"): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export interface AgentHarness {
  client: AgentSocketClient;
  child: ChildProcess;
  /** Temp dir of this agent (its socket lives in dir/run). */
  dir: string;
  /** Socket path as seen by the host. */
  hostSock: string;
  stderr: () => string;
  /** Closes the client and removes the socket: the agent keeps trying to reconnect. */
  disconnect(): Promise<void>;
  /** Listens again at the same path with a new client (which `client` then returns). */
  listen(opts?: ListenOptions): Promise<AgentSocketClient>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Command prefix, e.g. ["unshare", "--pid", "--fork", "--mount-proc"]. */
  wrap?: string[];
  /** Root to chroot into; the socket goes to <root>/.hangar/run/agent.sock. */
  chroot?: string;
  args?: string[];
  listen?: ListenOptions;
  /** HANGAR_AGENT_TOKEN for the agent. */
  token?: string;
  /** Resolve without waiting for the agent to connect. */
  noWait?: boolean;
}

export async function startAgent(o: StartOptions = {}): Promise<AgentHarness> {
  ensureBuilt();
  const dir = await mkdtemp(join(tmpdir(), "hangar-agent-"));
  const hostSock = o.chroot ? join(o.chroot, ".hangar/run/agent.sock") : join(dir, "run/agent.sock");
  const agentSock = o.chroot ? "/.hangar/run/agent.sock" : hostSock;
  let client = await listenForAgent(hostSock, o.listen);
  const argv = [
    ...(o.wrap ?? []),
    agentBinaryPath(),
    "--socket",
    agentSock,
    "--die-with-parent",
    ...(o.chroot ? ["--chroot", o.chroot] : []),
    ...(o.args ?? []),
  ];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (o.token !== undefined) env.HANGAR_AGENT_TOKEN = o.token;
  for (const k of ["ASAN_OPTIONS", "UBSAN_OPTIONS"]) if (process.env[k]) env[k] = process.env[k];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], env });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  if (!o.noWait) {
    try {
      await client.waitConnected(5000);
    } catch (e) {
      child.kill("SIGKILL");
      throw new Error(`agent did not connect: ${(e as Error).message}; stderr: ${err}`);
    }
  }
  const h: AgentHarness = {
    get client() {
      return client;
    },
    child,
    dir,
    hostSock,
    stderr: () => err,
    async disconnect() {
      await client.close();
    },
    async listen(opts?: ListenOptions) {
      await client.close();
      client = await listenForAgent(hostSock, opts);
      return client;
    },
    async stop() {
      await client.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export interface RunResult {
  id: number;
  pid: number;
  stdout: string;
  stderr: string;
  out: Buffer;
  exit: ExitInfo;
}

/** Routes output and exit events of one client by process id. */
export class Tracker {
  private readonly procs = new Map<number, { out: Buffer[]; err: Buffer[]; exit?: ExitInfo; done: (() => void)[] }>();

  constructor(readonly client: AgentSocketClient) {
    client.on("output", (id, stream, data) => {
      const p = this.entry(id);
      (stream === 1 ? p.out : p.err).push(data);
      for (const d of p.done.splice(0)) d();
    });
    client.on("exit", (id, info) => {
      const p = this.entry(id);
      p.exit = info;
      for (const d of p.done.splice(0)) d();
    });
  }

  private entry(id: number) {
    let p = this.procs.get(id);
    if (!p) this.procs.set(id, (p = { out: [], err: [], done: [] }));
    return p;
  }

  stdout(id: number): string {
    return Buffer.concat(this.entry(id).out).toString();
  }

  /** Resolves when pred holds for the process's stdout so far. */
  async until(id: number, pred: (stdout: string) => boolean, timeoutMs = 5000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = this.stdout(id);
      if (pred(s)) return s;
      if (Date.now() > end) throw new Error(`timed out; stdout so far: ${JSON.stringify(s.slice(-500))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.entry(id).done.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async wait(id: number, timeoutMs = 10_000): Promise<Omit<RunResult, "pid">> {
    const p = this.entry(id);
    const end = Date.now() + timeoutMs;
    while (!p.exit) {
      if (Date.now() > end) throw new Error(`process ${id} did not exit; stdout: ${JSON.stringify(this.stdout(id).slice(-300))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        p.done.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const out = Buffer.concat(p.out);
    return { id, out, stdout: out.toString(), stderr: Buffer.concat(p.err).toString(), exit: p.exit };
  }

  async run(opts: SpawnOptions, timeoutMs?: number): Promise<RunResult> {
    const { id, pid } = await this.client.spawn(opts);
    this.entry(id);
    return { pid, ...(await this.wait(id, timeoutMs)) };
  }
}

/** Resident set size of a host process in KiB. */
export async function rssKiB(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN);
}

/** True while any process of the group exists. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export const ENV = { PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C" };
