// How the driver gets an AgentClient for a sandbox: the node listens on the sandbox's
// agent.sock and the agent (PID 1 inside) dials in. The listen factory comes from
// @hangar/sandbox-agent; until it is given, a stand-in client is used whose calls fail and
// the sandbox counts as ready once its container runs.

import { EventEmitter } from "node:events";
import { fileURLToPath } from "node:url";
import { HangarError } from "@hangar/common";
import type { AgentClient, AgentInfo } from "@hangar/sandbox-agent";

/** Starts listening on `socketPath` and returns the client of the agent that will connect. */
export type AgentListen = (socketPath: string) => AgentClient | Promise<AgentClient>;

/** The static agent binary built by `npm run build -w @hangar/sandbox-agent`. */
export function defaultAgentBinary(): string {
  return fileURLToPath(new URL("../../../sandbox-agent/build/hangar-agent", import.meta.url));
}

/** Stand-in client for when no agent listen factory is configured. */
export class NoAgentClient extends EventEmitter {
  readonly connected = false;
  readonly placeholder = true;

  waitConnected(): Promise<AgentInfo> {
    return Promise.reject(this.fail());
  }
  private fail(): HangarError {
    return new HangarError("not_configured", "no sandbox agent client configured for this driver");
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const methods = [
  "info", "spawn", "signal", "writeStdin", "closeStdin", "resize", "listProcesses", "release", "stat", "readdir",
  "readFile", "writeFile", "openFile", "writeChunk", "closeFile", "mkdir", "remove", "rename", "chmod", "realpath",
  "watch", "unwatch", "detach",
] as const;
for (const m of methods) {
  (NoAgentClient.prototype as unknown as Record<string, unknown>)[m] = function (this: NoAgentClient) {
    return Promise.reject(new HangarError("not_configured", "no sandbox agent client configured for this driver"));
  };
}

export function noAgentClient(): AgentClient {
  return new NoAgentClient() as unknown as AgentClient;
}

export function isNoAgent(c: AgentClient): boolean {
  return c instanceof NoAgentClient;
}
