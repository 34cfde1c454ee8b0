export { McpGateway, type McpGatewayOptions, UPSTREAM_GONE } from "./gateway.js";
export { WebSocketTransport } from "./ws-transport.js";
export { bridgeBundlePath, builtinServerBundlePath } from "./bundle.js";
export { rfc2822 } from "./gmail-server.js";
export { type BridgeTarget, RunPlaneMcpBridges } from "./run-plane.js";
