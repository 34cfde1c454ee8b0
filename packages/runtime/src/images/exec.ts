// Running the external tools the image store drives (debootstrap, skopeo, umoci, mkfs.erofs, mount).

import { spawn } from "node:child_process";

export interface RunOptions {
  /** Kills the process (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with each line of stdout and stderr as it arrives. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Bytes of stdout/stderr kept for the result (the tail). */
  keepBytes?: number;
  /** Name used in error messages (defaults to the command). */
  label?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class RunError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const why = result.timedOut ? "timed out" : result.signal ? `killed by ${result.signal}` : `exited with ${result.code}`;
    super(`${command} ${why}: ${lastLines(result.stderr || result.stdout, 5)}`);
    this.name = "RunError";
  }
}

/** The last n non-empty lines of a text, joined with " | ". */
export function lastLines(text: string, n: number): string {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(" | ");
}

/** Runs a command without a shell and collects its output; never throws (see `run`). */
export function runRaw(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const keep = opts.keepBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const partial = { stdout: "", stderr: "" };
    const collect = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      if (stream === "stdout") stdout = (stdout + text).slice(-keep);
      else stderr = (stderr + text).slice(-keep);
      if (opts.onLine) {
        const lines = (partial[stream] + text).split("\n");
        partial[stream] = lines.pop() ?? "";
        for (const l of lines) opts.onLine(l, stream);
      }
    };
    child.stdout.on("data", collect("stdout"));
    child.stderr.on("data", collect("stderr"));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, opts.timeoutMs)
      : undefined;
    child.on("error", (err) => {
      if (timer) clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: `${stderr}\n${cmd}: ${err.message}`, timedOut });
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (opts.onLine) {
        if (partial.stdout) opts.onLine(partial.stdout, "stdout");
        if (partial.stderr) opts.onLine(partial.stderr, "stderr");
      }
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Runs a command; throws RunError unless it exits 0. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runRaw(cmd, args, opts);
  if (r.code !== 0) throw new RunError(opts.label ?? cmd, r);
  return r;
}
