// Starts real `hangar serve` processes for end-to-end tests and benchmarks, and talks to them.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { request as httpRequestRaw } from "node:http";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../../..");
export const CLI = join(REPO, "packages/cli/dist/main.js");
/** Shared image cache so the base image is built once per machine. */
export const IMAGE_DIR = process.env.HANGAR_IMAGE_DIR ?? "/var/cache/hangar/images";

/**
 * What a test server owns on the host, distinct from every other server on the machine (tests in
 * parallel, a developer's own `hangar serve`): run dir, cgroup parent, netns/veth prefix, nft table,
 * address range and preview ports. Slots are claimed with lock files naming the owning test process.
 */
export interface HostInstance {
  slot: number;
  env: Record<string, string>;
  cgroupParent: string;
}

const SLOT_DIR = "/run/hangar-testkit";
const SLOTS = 32;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Claims a free instance slot (a dead owner's slot is free again). */
export function claimInstance(): HostInstance {
  mkdirSync(SLOT_DIR, { recursive: true });
  for (let slot = 0; slot < SLOTS; slot++) {
    const file = `${SLOT_DIR}/${slot}`;
    try {
      const fd = openSync(file, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
    } catch {
      const owner = Number(readFileSync(file, "utf8").trim() || 0);
      if (owner && alive(owner)) continue;
      rmSync(file, { force: true }); // a crashed test run's: take it over (its leftovers are swept)
      slot--;
      continue;
    }
    const cgroupParent = `hangar-e${slot}`;
    return {
      slot,
      cgroupParent,
      env: {
        HANGAR_RUN_DIR: `/run/hangar-e${slot}`,
        HANGAR_CGROUP_PARENT: cgroupParent,
        HANGAR_NETWORK_PREFIX: `e${slot}`,
        HANGAR_NETWORK_TABLE: `hangar_e${slot}`,
        HANGAR_SANDBOX_CIDR: `10.${160 + slot}.0.0/16`,
        // preview ports of its own (a server's default range is 20000-20999)
        HANGAR_PREVIEW_PORTS: `${21_000 + slot * 100}-${21_000 + slot * 100 + 99}`,
      },
    };
  }
  throw new Error(`all ${SLOTS} test server slots in ${SLOT_DIR} are taken`);
}

export function releaseInstance(i: HostInstance): void {
  rmSync(`${SLOT_DIR}/${i.slot}`, { force: true });
}

export interface RunningHangar {
  url: string;
  port: number;
  apiKey: string;
  dataDir: string;
  proc: ChildProcess;
  /** Its own run dir, cgroup parent, network names and range on this host. */
  instance: HostInstance;
  /** Everything the server printed. */
  output(): string;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill9(): Promise<void>;
  /** Starts a new server process on the same data dir and port. */
  restart(): Promise<RunningHangar>;
  /** Stops the server, deletes every sandbox it holds, removes its host state and the data dir. */
  dispose(): Promise<void>;
}

export interface StartOptions {
  dataDir?: string;
  port?: number;
  apiKey?: string;
  env?: Record<string, string>;
  /** Host instance to run as (restart() keeps its own); default: a newly claimed one. */
  instance?: HostInstance;
}

export async function startHangar(opts: StartOptions = {}): Promise<RunningHangar> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "hangar-e2e-"));
  const apiKey = opts.apiKey ?? `hgr_test_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const instance = opts.instance ?? claimInstance();
  const env = { ...process.env, HANGAR_IMAGE_DIR: IMAGE_DIR, ...instance.env, ...opts.env };
  const proc = spawn(process.execPath, [CLI, "serve", "--port", String(opts.port ?? 0), "--data-dir", dataDir, "--log-level", "info"], {
    env: { ...env, HANGAR_BOOTSTRAP_API_KEY: apiKey },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));

  let served = false;
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`hangar did not start in time:\n${out}`)), 120_000);
    const check = () => {
      const m = /"msg":"hangar is serving"/.test(out) ? /"url":"http:\/\/[^:]+:(\d+)"/.exec(out) : null;
      if (m) {
        clearTimeout(timer);
        served = true;
        res(Number(m[1]));
      }
    };
    proc.stdout!.on("data", check);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      // only a server that never served gives its slot back here: a killed one is restarted on it
      // (dispose releases it), and another test claiming it meanwhile would share its host names
      if (served) return;
      if (!opts.instance) releaseInstance(instance);
      rej(new Error(`hangar exited with ${code} before serving:\n${out}`));
    });
  });

  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const h: RunningHangar = {
    url: `http://127.0.0.1:${port}`,
    port,
    apiKey,
    dataDir,
    proc,
    instance,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
    restart: () => startHangar({ ...opts, dataDir, port, apiKey, instance }),
    async dispose() {
      if (proc.exitCode === null && proc.signalCode === null) {
        await deleteAllSandboxes(h).catch(() => undefined);
        await h.stop();
      }
      // whatever is left (a test that crashed the server): sandboxes, network, mounts, cgroups
      const u = spawnSync(process.execPath, [CLI, "uninstall", "--data-dir", dataDir], { env, encoding: "utf8" });
      if (u.status !== 0) process.stderr.write(`hangar uninstall failed for ${dataDir}: ${u.stderr}\n`);
      rmSync(dataDir, { recursive: true, force: true });
      releaseInstance(instance);
    },
  };
  return h;
}

/** Calls the control plane with the admin key. */
export async function api(h: Pick<RunningHangar, "url" | "apiKey">, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${h.apiKey}`, "x-blaxel-workspace": "default", "blaxel-version": "2026-04-28", ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function deleteAllSandboxes(h: RunningHangar): Promise<void> {
  const res = await api(h, "GET", "/v0/sandboxes?limit=200");
  const page = (await res.json()) as { data: { metadata: { name: string } }[] };
  await Promise.all(page.data.map((s) => api(h, "DELETE", `/v0/sandboxes/${s.metadata.name}`)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const left = (await (await api(h, "GET", "/v0/sandboxes?limit=1")).json()) as { data: unknown[] };
    if (left.data.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * An HTTP request that, like a browser, resolves *.localhost to the loopback address (Node's
 * resolver does not) and sends the original Host header.
 */
export function httpRequest(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<HttpResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequestRaw(
      {
        host: u.hostname.endsWith("localhost") ? "127.0.0.1" : u.hostname,
        port: u.port || 80,
        method: init.method ?? "GET",
        path: u.pathname + u.search,
        headers: { host: u.host, ...init.headers },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}
export { zipOf, zipFiles, type ZipEntry } from "./zip.js";
