export * from "./store.js";
export { SqlStore } from "./sql-store.js";
export { openSqliteStore, migrate } from "./sqlite.js";
export { SecretBox } from "./secret-box.js";
export type { Database } from "./schema.js";
