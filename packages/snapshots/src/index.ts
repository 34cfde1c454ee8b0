export * from "./snapshot-service.js";
export * from "./snapshot-view.js";
export * from "./routes.js";
