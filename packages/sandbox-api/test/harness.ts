// Test harness: a real sandbox-ish root (host /usr bound read-only, own /etc, /tmp, /proc, /dev) with
// the real agent binary chrooted into it as PID 1 of its own PID namespace, and the sandbox API
// served on a loopback port over it. Mounts live in a private mount namespace, so nothing leaks to
// the host and killing the agent ends every process of the sandbox.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { silentLogger } from "@hangar/common";
import { agentBinaryPath, listenForAgent, type AgentSocketClient } from "@hangar/sandbox-agent";
import { createSandboxApi, type SandboxApi } from "../src/app.js";
import { SandboxServices } from "../src/services.js";
import type { SandboxLimits } from "../src/types.js";

let built = false;
function ensureAgentBuilt(): void {
  if (built) return;
  const native = fileURLToPath(new URL("../../sandbox-agent/native", import.meta.url));
  execFileSync("make", ["-s", "-C", native], { stdio: "inherit" });
  built = true;
}

export const MARKER_TEXT = `HANGAR-OUTSIDE-MARKER-${process.pid}-${Date.now()}`;

export interface SandboxHarness {
  /** Host directory holding root/, outside/ and logs/. */
  base: string;
  /** Host path of the sandbox root. */
  root: string;
  /** Host path of a file outside the sandbox root that must never be read or written. */
  marker: string;
  agent: AgentSocketClient;
  child: ChildProcess;
  services: SandboxServices;
  api: SandboxApi;
  server: Server;
  port: number;
  url: string;
  /**
   * Simulates a Hangar server restart: drops the services and the agent connection, listens again
   * and builds new services that rebuild the process table when the agent reconnects.
   */
  restartServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  name?: string;
  env?: Record<string, string>;
  limits?: Partial<SandboxLimits>;
  /** Skip binding /usr's ripgrep (PATH without rg) to exercise the fallback search. */
  hideRipgrep?: boolean;
}

export const SANDBOX_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", LANG: "C.UTF-8" };

export async function startSandbox(opts: HarnessOptions = {}): Promise<SandboxHarness> {
  ensureAgentBuilt();
  const base = await mkdtemp(join(tmpdir(), "hangar-api-"));
  const root = join(base, "root");
  const outside = join(base, "outside");
  await mkdir(outside);
  const marker = join(outside, "marker.txt");
  await writeFile(marker, MARKER_TEXT);
  for (const d of ["usr", "etc", "tmp", "root", "blaxel", "home/sandboxuser", "proc", "dev", ".hangar/run"]) await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, "tmp"), 0o1777);
  for (const l of ["bin", "sbin", "lib", "lib64"]) await symlink(`usr/${l}`, join(root, l));
  await copyFile("/etc/passwd", join(root, "etc/passwd"));
  await copyFile("/etc/group", join(root, "etc/group"));
  await writeFile(join(root, "etc/passwd"), "sandboxuser:x:4242:4242::/home/sandboxuser:/bin/sh\n", { flag: "a" });
  await writeFile(join(root, "etc/group"), "sandboxgroup:x:4242:\n", { flag: "a" });

  const hostSock = join(root, ".hangar/run/agent.sock");
  const agent = await listenForAgent(hostSock);
  // Mounts happen in a private mount namespace of a new PID namespace; the agent is its PID 1.
  const script = [
    "set -e",
    `mount --bind /usr "$R/usr"`,
    `mount -o remount,bind,ro "$R/usr"`,
    `mount -t proc proc "$R/proc"`,
    `mount --rbind /dev "$R/dev"`,
    `exec "$A" --socket /.hangar/run/agent.sock --chroot "$R"`,
  ].join("\n");
  // setpriv --pdeathsig: unshare dies with this test process; --kill-child: the agent (PID 1 of the
  // new namespace, so every sandbox process with it) dies with unshare.
  const child = spawn("setpriv", ["--pdeathsig", "KILL", "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--propagation", "private", "sh", "-c", script], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { PATH: process.env.PATH, R: root, A: agentBinaryPath() },
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    await agent.waitConnected(10_000);
  } catch (e) {
    child.kill("SIGKILL");
    await agent.close();
    await rm(base, { recursive: true, force: true });
    throw new Error(`agent did not connect: ${(e as Error).message}; stderr: ${stderr}`);
  }

  const env = { ...SANDBOX_ENV, ...opts.env };
  if (opts.hideRipgrep) env.PATH = "/nonexistent-bin";
  const makeServices = (client: AgentSocketClient) =>
    new SandboxServices({
      id: "test",
      name: opts.name ?? "test",
      agent: client,
      image: { workingDir: "/blaxel", home: "/root", uid: 0, gid: 0, shell: "/bin/sh" },
      env,
      logDir: join(base, "logs"),
      logger: silentLogger,
      limits: opts.limits,
    });
  const api = createSandboxApi({ logger: silentLogger });
  await api.ready();
  const sockets = new Set<Socket>();
  const h = {
    base,
    root,
    marker,
    agent,
    child,
    services: makeServices(agent),
    api,
    server: null as unknown as Server,
    port: 0,
    url: "",
    async restartServer() {
      await h.services.dispose();
      await h.agent.close();
      h.agent = await listenForAgent(hostSock);
      // Services exist before the agent reconnects, so output it buffered is not missed.
      h.services = makeServices(h.agent);
      await h.agent.waitConnected(10_000);
      await h.services.ready;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      h.server.closeAllConnections();
      await new Promise<void>((r) => h.server.close(() => r()));
      await h.services.dispose();
      await api.close();
      await h.agent.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(base, { recursive: true, force: true });
    },
  };
  await h.services.ready;
  h.server = createServer((req, res) => api.handle(req, res, h.services));
  h.server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  h.server.on("upgrade", (req, socket, head) => api.handleUpgrade(req, socket, head, h.services));
  await new Promise<void>((r) => h.server.listen(0, "127.0.0.1", r));
  h.port = (h.server.address() as AddressInfo).port;
  h.url = `http://127.0.0.1:${h.port}`;
  return h;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = unknown>(): T;
}

/** HTTP with the path sent exactly as given (no URL normalisation, unlike fetch). */
export function raw(port: number, method: string, path: string, body?: Buffer | string | object, headers: Record<string, string> = {}): Promise<RawResponse> {
  let payload: Buffer | undefined;
  const h: Record<string, string> = { ...headers };
  if (Buffer.isBuffer(body)) payload = body;
  else if (typeof body === "string") payload = Buffer.from(body);
  else if (body !== undefined) {
    payload = Buffer.from(JSON.stringify(body));
    h["content-type"] ??= "application/json";
  }
  if (payload) h["content-length"] = String(payload.length);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers: h }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buf,
          text: buf.toString("utf8"),
          json: <T>() => JSON.parse(buf.toString("utf8")) as T,
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** Lists a host directory tree (relative paths), for before/after comparisons. */
export async function listTree(dir: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string, rel: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip.includes(r)) continue;
      out.push(r);
      if (e.isDirectory()) await walk(join(d, e.name), r);
    }
  }
  await walk(dir, "");
  return out.sort();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 5000, what = "condition"): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export { readFile };
