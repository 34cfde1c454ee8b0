export { McpGateway, type McpGatewayOptions, UPSTREAM_GONE } from "./gateway.js";
export { WebSocketTransport } from "./ws-transport.js";
export { bridgeBundlePath } from "./bundle.js";
export { type BridgeTarget, RunPlaneMcpBridges } from "./run-plane.js";
