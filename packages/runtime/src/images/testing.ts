// Helpers for the image tests (and driver tests): run a resolve in a separate process, count
// mounts, start a throwaway registry on loopback.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { ResolvedImage } from "./types.js";
import { readMounts } from "./erofs.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const REPO = join(HERE, "../../../..");

export interface ChildResolve {
  code: number | null;
  image: ResolvedImage | undefined;
  stderr: string;
}

/** Resolves `ref` in store `dir` from a new Node process (prebuild.ts through tsx). */
export function resolveInChild(dir: string, ref: string): Promise<ChildResolve> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--conditions=hangar-source", "--import", "tsx", join(HERE, "prebuild.ts"), dir, ref], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => {
      let image: ResolvedImage | undefined;
      try {
        image = JSON.parse(stdout) as ResolvedImage;
      } catch {
        image = undefined;
      }
      resolve({ code, image, stderr });
    });
  });
}

/** How many mounts sit exactly at `path` (stacked mounts count more than once). */
export async function mountCount(path: string): Promise<number> {
  return (await readMounts()).filter((m) => m.mountPoint === path).length;
}

/** Mount points at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await readMounts()).map((m) => m.mountPoint).filter((p) => p === dir || p.startsWith(dir + "/"));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export interface TestRegistry {
  /** host:port */
  host: string;
  stop(): Promise<void>;
}

export const REGISTRY_BINARY = "/usr/bin/docker-registry";

/** Starts Debian's docker-registry (distribution) on a loopback port, storing under `dir`. */
export async function startRegistry(dir: string): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BINARY)) throw new Error("docker-registry is not installed");
  await mkdir(join(dir, "data"), { recursive: true });
  const port = await freePort();
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child: ChildProcess = spawn(REGISTRY_BINARY, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("close", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
