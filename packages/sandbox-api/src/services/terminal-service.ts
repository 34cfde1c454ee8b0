// Interactive terminals: a shell under a PTY held by the agent. A session outlives a dropped
// WebSocket for a while so a client reconnecting with the same sessionId finds its shell (and the
// recent screen output) again.

import { EventEmitter } from "node:events";
import type { AgentClient } from "@hangar/sandbox-agent";
import { HangarError } from "@hangar/common";
import type { AgentEventRouter } from "../managers/agent-router.js";
import { fromAgentError } from "../util/agent-errors.js";
import type { SandboxImage } from "../types.js";

const SIGHUP = 1;
const SIGKILL = 9;
const REPLAY_BYTES = 64 * 1024;
const DETACHED_TTL_MS = 5 * 60_000;

export class TerminalSession extends EventEmitter {
  private recent: Buffer[] = [];
  private recentBytes = 0;
  attached = false;
  exited = false;
  exitCode: number | null = null;
  detachTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly sessionId: string,
    readonly agentId: number,
    readonly pid: number,
    private readonly agent: AgentClient,
  ) {
    super();
  }

  /** Output kept for a client that re-attaches. */
  replay(): Buffer {
    return Buffer.concat(this.recent);
  }

  onOutput(data: Buffer): void {
    this.recent.push(data);
    this.recentBytes += data.length;
    while (this.recentBytes > REPLAY_BYTES && this.recent.length > 1) this.recentBytes -= this.recent.shift()!.length;
    this.emit("output", data);
  }

  onExit(code: number | null): void {
    this.exited = true;
    this.exitCode = code;
    this.emit("exit", code);
  }

  async input(data: Buffer): Promise<void> {
    if (this.exited || data.length === 0) return;
    await this.agent.writeStdin(this.agentId, data).catch((e: unknown) => {
      throw fromAgentError(e, "terminal");
    });
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (this.exited) return;
    await this.agent.resize(this.agentId, cols, rows).catch(() => {});
  }

  async kill(): Promise<void> {
    if (this.exited) return;
    await this.agent.signal(this.agentId, SIGHUP, true).catch(() => {});
    setTimeout(() => {
      if (!this.exited) void this.agent.signal(this.agentId, SIGKILL, true).catch(() => {});
    }, 2_000).unref();
  }
}

export interface OpenTerminalOptions {
  sessionId?: string;
  shell?: string;
  cwd: string;
  cols: number;
  rows: number;
}

export class TerminalService {
  private readonly sessions = new Map<string, TerminalSession>();

  constructor(
    private readonly agent: AgentClient,
    private readonly router: AgentEventRouter,
    private readonly image: SandboxImage,
    private readonly env: () => Record<string, string>,
  ) {}

  /** Re-attaches to a live detached session with this id, or starts a new shell. */
  async open(opts: OpenTerminalOptions): Promise<{ session: TerminalSession; reattached: boolean }> {
    const existing = opts.sessionId ? this.sessions.get(opts.sessionId) : undefined;
    if (existing && !existing.exited && !existing.attached) {
      if (existing.detachTimer) clearTimeout(existing.detachTimer);
      existing.detachTimer = null;
      await existing.resize(opts.cols, opts.rows);
      return { session: existing, reattached: true };
    }
    const shell = opts.shell || this.image.shell || "/bin/sh";
    if (!shell.startsWith("/") && shell.includes("/")) throw new HangarError("validation_failed", "shell must be an absolute path or a command name");
    const env: Record<string, string> = { ...this.env(), TERM: "xterm-256color" };
    env.HOME ??= this.image.home;
    env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let spawned: { id: number; pid: number };
    try {
      spawned = await this.agent.spawn({
        argv: [shell],
        env,
        cwd: opts.cwd,
        uid: this.image.uid,
        gid: this.image.gid,
        pty: { cols: opts.cols, rows: opts.rows },
        stdin: true,
        tag: Buffer.from(JSON.stringify({ m: "hangar.terminal/1" })),
      });
    } catch (e) {
      throw fromAgentError(e, `terminal shell ${shell}`);
    }
    // A session id in use by an attached terminal gets a fresh shell under a new key.
    const key = opts.sessionId && !this.sessions.has(opts.sessionId) ? opts.sessionId : `${opts.sessionId ?? "term"}-${spawned.id}`;
    const session = new TerminalSession(key, spawned.id, spawned.pid, this.agent);
    this.sessions.set(key, session);
    this.router.register(spawned.id, {
      onOutput: (_stream, data) => session.onOutput(data),
      onExit: (info) => {
        void this.agent.release(spawned.id).catch(() => {});
        session.onExit(info.exitCode);
        if (session.detachTimer) clearTimeout(session.detachTimer);
        this.sessions.delete(key);
      },
    });
    return { session, reattached: false };
  }

  /** The client went away: keep the shell for a while, then end it. */
  detach(session: TerminalSession): void {
    session.attached = false;
    if (session.exited) return;
    session.detachTimer = setTimeout(() => void session.kill(), DETACHED_TTL_MS);
    session.detachTimer.unref();
  }

  dispose(): void {
    for (const s of this.sessions.values()) {
      if (s.detachTimer) clearTimeout(s.detachTimer);
      void s.kill();
    }
    this.sessions.clear();
  }
}
