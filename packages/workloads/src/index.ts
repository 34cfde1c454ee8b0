export * from "./workload-spec.js";
export * from "./workload-service.js";
export * from "./workload-view.js";
export { workloadRoutes, type WorkloadRoutesOptions } from "./routes.js";
export { WorkloadRouter, type WorkloadRouterOptions } from "./router.js";
export * from "./callbacks.js";
export { ReplacementService, replacementView, type ReplacementInput } from "./replacements.js";
export { invokeRoutes, type InvokeRoutesOptions } from "./invoke-routes.js";
