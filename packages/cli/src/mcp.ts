// `hangar run function`: lists or calls the tools of a function (an MCP server) on the run plane,
// with the official MCP SDK client over Streamable HTTP at {metadata.url}/mcp.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CliError, type HangarClient } from "./client.js";

export interface RunFunctionOptions {
  tool?: string;
  /** The tool's arguments, a JSON object. */
  args?: string;
}

/** Returns what to print, and whether the tool reported an error. */
export async function runFunction(c: HangarClient, name: string, o: RunFunctionOptions): Promise<{ value: unknown; isError: boolean }> {
  let args: Record<string, unknown> = {};
  if (o.args !== undefined) {
    try {
      args = JSON.parse(o.args) as Record<string, unknown>;
    } catch (e) {
      throw new CliError(`--args: not JSON (${(e as Error).message})`);
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) throw new CliError("--args: a JSON object of the tool's arguments");
  }
  const fn = await c.api<{ metadata: { url?: string } }>("GET", `/functions/${encodeURIComponent(name)}`);
  const base = fn.metadata.url ?? `${c.cfg.url}/run/${encodeURIComponent(c.cfg.workspace)}/functions/${encodeURIComponent(name)}`;
  const client = new Client({ name: "hangar-cli", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(`${base.replace(/\/$/, "")}/mcp`), { requestInit: { headers: c.headers() } });
  try {
    await client.connect(transport);
    if (!o.tool) {
      const { tools } = await client.listTools();
      return { value: tools, isError: false };
    }
    const r = await client.callTool({ name: o.tool, arguments: args });
    return { value: r, isError: r.isError === true };
  } catch (e) {
    throw new CliError(`function/${name}: ${(e as Error).message}`);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close().catch(() => undefined);
  }
}
