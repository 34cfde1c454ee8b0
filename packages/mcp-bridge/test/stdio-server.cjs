// A stdio MCP server for the bridge's tests: per-process state, progress, and a crash.
const { McpServer } = require("@modelcontextprotocol/sdk/server/mcp.js");
const { StdioServerTransport } = require("@modelcontextprotocol/sdk/server/stdio.js");
const { z } = require("zod");
const s = new McpServer({ name: "counter", version: "1.0.0" });
let count = 0;
s.tool("add", "Adds to this session's counter", { n: z.number() }, async ({ n }) => ({ content: [{ type: "text", text: String((count += n)) }] }));
s.tool("whoami", "The server's pid and FOO", {}, async () => ({ content: [{ type: "text", text: `${process.pid} ${process.env.FOO ?? ""}` }] }));
s.tool("slow", "Reports progress three times", {}, async (_a, extra) => {
  for (let i = 1; i <= 3; i++) {
    if (extra._meta?.progressToken !== undefined) await extra.sendNotification({ method: "notifications/progress", params: { progressToken: extra._meta.progressToken, progress: i, total: 3 } });
    await new Promise((r) => setTimeout(r, 20));
  }
  return { content: [{ type: "text", text: "done" }] };
});
s.tool("crash", "Exits mid-call", {}, async () => process.exit(3));
s.connect(new StdioServerTransport());
