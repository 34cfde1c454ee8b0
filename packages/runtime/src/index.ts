export type * from "./driver.js";
export { SANDBOX_API_PORT, hasApiRelay } from "./driver.js";
export * from "./linux/index.js";
export * from "./images/index.js";
export * from "./egress.js";
