export * from "./host.js";
export * from "./storage-service.js";
export * from "./views.js";
export * from "./routes.js";
export * from "./drive-mounts.js";
export * from "./node-storage.js";
