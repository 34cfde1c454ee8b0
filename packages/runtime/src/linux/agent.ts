// How the driver gets an AgentClient for a sandbox: the node listens on the sandbox's
// agent.sock (`listenForAgent` of @hangar/sandbox-agent) and the agent, PID 1 inside, dials in
// presenting a per-sandbox token it received in its environment (and wiped from memory).

import { listenForAgent, type AgentClient } from "@hangar/sandbox-agent";

/** Starts listening on `socketPath` and returns the client of the agent that will connect. */
export type AgentListen = (socketPath: string, token: string) => AgentClient | Promise<AgentClient>;

export const defaultAgentListen: AgentListen = (socketPath, token) => listenForAgent(socketPath, { token, socketMode: 0o600 });
