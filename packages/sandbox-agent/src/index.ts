export type * from "./types.js";
export { AgentSocketClient, listenForAgent, type ListenOptions } from "./client.js";
export { AgentError, ProtocolError, PROTOCOL_VERSION, MAX_PAYLOAD, errnoName } from "./protocol.js";
export { AGENT_VERSION, agentBinaryPath } from "./binary.js";
