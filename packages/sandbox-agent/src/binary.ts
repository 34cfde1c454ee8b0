import { fileURLToPath } from "node:url";

/** Absolute path of the static agent binary built by `npm run build -w @hangar/sandbox-agent`. */
export function agentBinaryPath(): string {
  // src/ and dist/ both sit one level below the package root, next to build/.
  return fileURLToPath(new URL("../build/hangar-agent", import.meta.url));
}

/** The agent's version (AGENT_VERSION in native/agent.h; its HELLO reports it). */
export const AGENT_VERSION = "0.1.0";
