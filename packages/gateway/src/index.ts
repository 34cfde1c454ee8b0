export * from "./providers/index.js";
export * from "./usage.js";
export * from "./policies.js";
export * from "./gateway-service.js";
export * from "./accountant.js";
export * from "./model-gateway.js";
export { gatewayRoutes, connectionView, type GatewayRoutesOptions } from "./routes.js";
export * from "./upstream-guard.js";
