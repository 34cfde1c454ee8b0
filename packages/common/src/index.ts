export * from "./errors.js";
export * from "./logger.js";
export * from "./ids.js";
export * from "./duration.js";
export * from "./http.js";
export * from "./validation.js";
export * from "./ttl-cache.js";
export * from "./mcp-session.js";
