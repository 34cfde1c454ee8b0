// File watches: each subscriber gets its own agent watch (inotify inside the sandbox); events are
// routed back by watch id. Recursive watches are the agent's (it adds new subdirectories itself).

import type { AgentClient, WatchEvent } from "@hangar/sandbox-agent";
import { agentCall } from "../util/agent-errors.js";

export interface WireFileEvent {
  op: string;
  name: string;
  path: string;
  error: string | null;
}

export interface WatchSubscription {
  close(): Promise<void>;
}

export class WatchService {
  private readonly handlers = new Map<number, (e: WatchEvent) => void>();
  private readonly onWatch = (watchId: number, event: WatchEvent) => this.handlers.get(watchId)?.(event);

  constructor(private readonly agent: AgentClient) {
    agent.on("watch", this.onWatch);
  }

  get active(): number {
    return this.handlers.size;
  }

  /**
   * Watches `dir` (and everything below it with `recursive`); `ignore` drops events whose full
   * path contains any of the given substrings.
   */
  async watch(dir: string, opts: { recursive: boolean; ignore: string[] }, onEvent: (e: WireFileEvent) => void): Promise<WatchSubscription> {
    const ignore = opts.ignore.filter((s) => s !== "");
    const id = await agentCall(() => this.agent.watch(dir, { recursive: opts.recursive }), dir);
    this.handlers.set(id, (e) => {
      const full = e.path === "/" ? `/${e.name}` : `${e.path}/${e.name}`;
      if (ignore.some((p) => full.includes(p))) return;
      onEvent({ op: e.op, name: e.name, path: e.path, error: null });
    });
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        this.handlers.delete(id);
        await this.agent.unwatch(id).catch(() => {});
      },
    };
  }

  dispose(): void {
    this.agent.off("watch", this.onWatch);
    for (const id of this.handlers.keys()) void this.agent.unwatch(id).catch(() => {});
    this.handlers.clear();
  }
}
