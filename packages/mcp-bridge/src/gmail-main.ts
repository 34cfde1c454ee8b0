// Entry of the bundled built-in Gmail MCP server (dist/gmail-mcp.cjs).

import { startGmailServer } from "./gmail-server.js";

startGmailServer(Number(process.env.PORT ?? 80), process.env.HOST ?? "0.0.0.0");
