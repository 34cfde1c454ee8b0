export * from "./edge.js";
export * from "./proxy.js";
