import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The in-sandbox bridge as one file (esbuild bundle of main.ts made by the package's build). */
export function bridgeBundlePath(): string {
  const p = fileURLToPath(new URL("../dist/mcp-bridge.cjs", import.meta.url));
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build -w @hangar/mcp-bridge)`);
  return p;
}
