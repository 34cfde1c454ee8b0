export * from "./local-node.js";
