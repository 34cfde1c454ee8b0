export * from "./app.js";
export * from "./config.js";
export * from "./bootstrap.js";
export { VERSION } from "./version.js";
export { uninstallRuntime } from "./driver.js";
