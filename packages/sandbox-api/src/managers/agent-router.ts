// Routes the agent's process events (output, exit) to whoever owns each process: the process
// manager, a terminal, an internal command. Events for a process whose owner is not registered yet
// (the spawn reply and the first output can arrive in the same read) are held briefly and replayed.

import type { AgentClient, ExitInfo } from "@hangar/sandbox-agent";

export interface ProcessSink {
  onOutput(stream: 1 | 2, data: Buffer): void;
  onExit(info: ExitInfo): void;
}

interface Held {
  output: Array<{ stream: 1 | 2; data: Buffer }>;
  bytes: number;
  exit?: ExitInfo;
  at: number;
}

const HOLD_MS = 60_000;
const HOLD_BYTES = 4 * 1024 * 1024;

export class AgentEventRouter {
  private readonly sinks = new Map<number, ProcessSink>();
  private readonly held = new Map<number, Held>();
  private readonly onOutput = (id: number, stream: 1 | 2, data: Buffer) => {
    const sink = this.sinks.get(id);
    if (sink) return sink.onOutput(stream, data);
    const h = this.hold(id);
    if (h.bytes + data.length <= HOLD_BYTES) {
      h.output.push({ stream, data });
      h.bytes += data.length;
    }
  };
  private readonly onExit = (id: number, info: ExitInfo) => {
    const sink = this.sinks.get(id);
    if (sink) {
      this.sinks.delete(id);
      return sink.onExit(info);
    }
    this.hold(id).exit = info;
  };
  private readonly pruner: NodeJS.Timeout;

  constructor(private readonly agent: AgentClient) {
    agent.on("output", this.onOutput);
    agent.on("exit", this.onExit);
    this.pruner = setInterval(() => this.prune(), HOLD_MS);
    this.pruner.unref();
  }

  private hold(id: number): Held {
    let h = this.held.get(id);
    if (!h) {
      h = { output: [], bytes: 0, at: Date.now() };
      this.held.set(id, h);
    }
    return h;
  }

  private prune(): void {
    const cutoff = Date.now() - HOLD_MS;
    for (const [id, h] of this.held) if (h.at < cutoff) this.held.delete(id);
  }

  /** Attaches the owner of process `id`, replaying anything that arrived before. */
  register(id: number, sink: ProcessSink): void {
    const h = this.held.get(id);
    this.held.delete(id);
    if (h?.exit) {
      for (const o of h.output) sink.onOutput(o.stream, o.data);
      sink.onExit(h.exit);
      return;
    }
    this.sinks.set(id, sink);
    if (h) for (const o of h.output) sink.onOutput(o.stream, o.data);
  }

  /** True when process `id` has an owner in this router. */
  owns(id: number): boolean {
    return this.sinks.has(id);
  }

  unregister(id: number): void {
    this.sinks.delete(id);
    this.held.delete(id);
  }

  dispose(): void {
    clearInterval(this.pruner);
    this.agent.off("output", this.onOutput);
    this.agent.off("exit", this.onExit);
    this.sinks.clear();
    this.held.clear();
  }
}
