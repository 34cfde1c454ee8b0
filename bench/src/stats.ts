// Small statistics and process helpers for the benchmarks.

import { spawn, spawnSync } from "node:child_process";

export interface Dist {
  n: number;
  p50: number;
  p90: number;
  min: number;
  max: number;
}

export function dist(samples: number[]): Dist {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, p50: at(0.5), p90: at(0.9), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

/** Runs fn n times, returning the milliseconds each took. */
export async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Spawns a command and resolves when it exits (rejects on a non-zero exit). */
export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d));
    p.stderr.on("data", (d: Buffer) => (err += d));
    p.on("error", reject);
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.slice(-2000)}`))));
    p.stdin.end(opts.input);
  });
}

export function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

export const fmt = (ms: number) => (Number.isFinite(ms) ? (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) : "n/a");

/** One line of the bench's table. */
export interface Row {
  measure: string;
  hangar: string;
  peer: string;
  ratio: string;
  target: string;
  met: boolean | null;
}
