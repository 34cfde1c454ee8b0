export type * from "./types.js";
export { AgentSocketClient, listenForAgent, type ListenOptions } from "./client.js";
export { AgentError, ProtocolError, PROTOCOL_VERSION, MAX_PAYLOAD, errnoName } from "./protocol.js";
export { agentBinaryPath } from "./binary.js";
