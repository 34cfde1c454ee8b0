export * from "./edge.js";
export * from "./proxy.js";
export * from "./urls.js";
export * from "./front-door.js";
export * from "./preview-ports.js";
