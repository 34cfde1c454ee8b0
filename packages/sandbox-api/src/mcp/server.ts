// The sandbox's MCP server: Streamable HTTP at /mcp, stateless (a server per request), JSON
// responses. Tool arguments are validated against the same JSON schemas tools/list publishes.

import type { IncomingMessage, ServerResponse } from "node:http";
import { Ajv, type ValidateFunction } from "ajv";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { HangarError, type Logger } from "@hangar/common";
import type { SandboxServices } from "../services.js";
import { TOOLS, type ToolDef } from "./tools.js";

const ajv = new Ajv({ allErrors: false, strict: false, coerceTypes: false, useDefaults: true });
const validators = new Map<string, ValidateFunction>(TOOLS.map((t) => [t.name, ajv.compile(t.inputSchema)]));
const byName = new Map<string, ToolDef>(TOOLS.map((t) => [t.name, t]));

function errorResult(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** Runs one tool call; failures become tool results with isError (so the model can react). */
export async function callTool(s: SandboxServices, name: string, args: unknown, logger: Logger): Promise<CallToolResult> {
  const tool = byName.get(name);
  if (!tool) return errorResult(`unknown tool ${JSON.stringify(name)}; call tools/list for the available tools`);
  const input = (args ?? {}) as Record<string, unknown>;
  const validate = validators.get(name)!;
  if (!validate(input)) {
    const e = validate.errors?.[0];
    const where = e?.instancePath ? `${e.instancePath.slice(1).replace(/\//g, ".")}: ` : "";
    const what =
      e?.keyword === "required"
        ? `missing argument ${JSON.stringify((e.params as { missingProperty: string }).missingProperty)}`
        : e?.keyword === "additionalProperties"
          ? `unknown argument ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`
          : (e?.message ?? "invalid arguments");
    return errorResult(`invalid arguments for ${name}: ${where}${what}`);
  }
  try {
    const out = await tool.run(s, input);
    return { content: [{ type: "text", text: JSON.stringify(out) }] };
  } catch (e) {
    if (e instanceof HangarError) return errorResult(`${e.message}${e.status === 503 && e.code === "not_configured" ? " (not_configured)" : ""}`);
    logger.error({ err: e, tool: name }, "MCP tool failed");
    return errorResult(`${name} failed: ${(e as Error).message ?? "internal error"}`);
  }
}

export function createMcpServer(s: SandboxServices, version: string, logger: Logger): Server {
  const server = new Server(
    { name: "hangar-sandbox", version },
    {
      capabilities: { tools: {} },
      instructions:
        `Tools to operate the sandbox '${s.name}': run commands (process*), read and write files (fs*), search and edit code (codegen*). ` +
        `Relative paths are relative to ${s.paths.workingDir}.`,
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: TOOLS.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => callTool(s, req.params.name, req.params.arguments, logger));
  return server;
}

/** Handles one POST /mcp with a fresh stateless server and transport. */
export async function handleMcpRequest(req: IncomingMessage, res: ServerResponse, body: unknown, s: SandboxServices, version: string, logger: Logger): Promise<void> {
  const server = createMcpServer(s, version, logger);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.once("close", () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}
