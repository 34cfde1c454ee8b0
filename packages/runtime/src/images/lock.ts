// Cross-process exclusive locks held by the kernel (flock(1) from util-linux). A small holder
// process keeps the lock while our stdin pipe is open, so the lock is released when we release it
// or when this process dies for any reason (kill -9 included): no stale lock files to clean up.

import { spawn } from "node:child_process";

export interface Lock {
  release(): Promise<void>;
}

/** Takes an exclusive lock on `file` (created if missing), waiting for other holders. */
export function acquireLock(file: string, opts: { onWait?: () => void; timeoutMs?: number; noWait?: boolean } = {}): Promise<Lock> {
  return new Promise((resolve, reject) => {
    // -o: the lock fd is not passed to the shell; flock itself holds it until `cat` sees EOF.
    const args = ["-x", "-o"];
    if (opts.noWait) args.push("-n");
    else if (opts.timeoutMs !== undefined) args.push("-w", String(Math.ceil(opts.timeoutMs / 1000)));
    args.push(file, "-c", "echo locked; exec cat >/dev/null");
    const child = spawn("flock", args, { stdio: ["pipe", "pipe", "pipe"] });
    let settled = false;
    let stderr = "";
    const waitTimer = setTimeout(() => {
      if (!settled) opts.onWait?.();
    }, 150);
    const exited = new Promise<void>((res) => child.once("close", () => res()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdout.on("data", (c: Buffer) => {
      if (settled || !c.toString().includes("locked")) return;
      settled = true;
      clearTimeout(waitTimer);
      resolve({
        async release() {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.on("error", (err) => {
      clearTimeout(waitTimer);
      if (!settled) {
        settled = true;
        reject(new Error(`flock ${file}: ${err.message}`));
      }
    });
    child.on("close", (code) => {
      clearTimeout(waitTimer);
      if (!settled) {
        settled = true;
        reject(new Error(`flock ${file} exited with ${code}: ${stderr.trim() || "timed out waiting for the lock"}`));
      }
    });
  });
}

/** Runs `fn` while holding the lock on `file`. */
export async function withLock<T>(file: string, fn: () => Promise<T>, opts: { onWait?: () => void; timeoutMs?: number } = {}): Promise<T> {
  const lock = await acquireLock(file, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Tries to take the lock without waiting; undefined when someone else holds it. */
export async function tryLock(file: string): Promise<Lock | undefined> {
  try {
    return await acquireLock(file, { noWait: true });
  } catch {
    return undefined;
  }
}
