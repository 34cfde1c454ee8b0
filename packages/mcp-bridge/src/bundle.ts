import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The in-sandbox bridge as one file (esbuild bundle of main.ts made by the package's build). */
export function bridgeBundlePath(): string {
  const p = fileURLToPath(new URL("../dist/mcp-bridge.cjs", import.meta.url));
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build -w @hangar/mcp-bridge)`);
  return p;
}

/** Hangar's built-in MCP server for an integration (esbuild bundle, e.g. dist/gmail-mcp.cjs). */
export function builtinServerBundlePath(name: string): string {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`bad built-in server name ${name}`);
  const p = fileURLToPath(new URL(`../dist/${name}-mcp.cjs`, import.meta.url));
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build -w @hangar/mcp-bridge)`);
  return p;
}
