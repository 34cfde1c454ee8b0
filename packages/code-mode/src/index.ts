import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The code-mode MCP server as one file (esbuild bundle of main.ts made by the package's build). */
export function codeModeBundlePath(): string {
  const p = fileURLToPath(new URL("../dist/code-mode.cjs", import.meta.url));
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build -w @hangar/code-mode)`);
  return p;
}
export { type ProxyRule, apiHosts, authEnvName, credentialRules } from "./openapi.js";
export { RESULT_MARK, executeWrapper, parseExecuteOutput } from "./scripts.js";
export { EXECUTE_SANDBOX_LABEL, executeSandboxName, isExecuteSandboxOf } from "./execute-sandbox.js";
