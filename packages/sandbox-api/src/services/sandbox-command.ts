// Runs a helper command inside the sandbox (e.g. ripgrep) that is not part of the user's process
// table: output is collected in memory (bounded) or handed line by line to a consumer that can stop
// the command early.

import type { AgentClient } from "@hangar/sandbox-agent";
import type { AgentEventRouter } from "../managers/agent-router.js";

export const INTERNAL_TAG = Buffer.from(JSON.stringify({ m: "hangar.internal/1" }));

export interface CommandOptions {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** Receives complete stdout lines; return false to stop the command (SIGKILL). */
  onLine?: (line: string) => boolean | void;
  /** Cap of collected stdout/stderr bytes each. */
  maxBytes?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface CommandResult {
  exitCode: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  /** True when the consumer, the timeout or the abort signal ended it. */
  stopped: boolean;
}

const SIGKILL = 9;

export async function runSandboxCommand(agent: AgentClient, router: AgentEventRouter, opts: CommandOptions): Promise<CommandResult> {
  const max = opts.maxBytes ?? 8 * 1024 * 1024;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let outBytes = 0;
  let errBytes = 0;
  let partial = "";
  let stopped = false;
  const { id } = await agent.spawn({ argv: opts.argv, env: opts.env, cwd: opts.cwd, uid: opts.uid, gid: opts.gid, tag: INTERNAL_TAG });
  const stop = () => {
    if (stopped) return;
    stopped = true;
    void agent.signal(id, SIGKILL, true).catch(() => {});
  };
  return new Promise<CommandResult>((resolve) => {
    const timer = opts.timeoutMs ? setTimeout(stop, opts.timeoutMs) : undefined;
    const onAbort = () => stop();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    router.register(id, {
      onOutput(stream, data) {
        if (stream === 2) {
          if (errBytes < max) {
            err.push(data);
            errBytes += data.length;
          }
          return;
        }
        if (opts.onLine) {
          if (stopped) return;
          partial += data.toString("utf8");
          const lines = partial.split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) {
            if (opts.onLine(line) === false) {
              stop();
              return;
            }
          }
          return;
        }
        if (outBytes < max) {
          out.push(data);
          outBytes += data.length;
        }
      },
      onExit(info) {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        if (opts.onLine && partial && !stopped) opts.onLine(partial);
        void agent.release(id).catch(() => {});
        resolve({
          exitCode: info.exitCode,
          signal: info.signal,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          stopped,
        });
      },
    });
  });
}
