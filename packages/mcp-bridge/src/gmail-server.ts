// Hangar's built-in Gmail MCP server: what a function with runtime.type "mcp", no image and a
// gmail integration connection runs (`node gmail-mcp.cjs`, MCP Streamable HTTP on $HOST:$PORT/mcp).
// Its one tool, send_email, sends a plain-text message through the Gmail API
// (users/me/messages/send, a base64url RFC 2822 message). It holds no credential: the egress proxy
// adds the connection's access token to its requests to the API host ($GMAIL_API_URL).

import { webcrypto } from "node:crypto";
import { createServer } from "node:http";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

// Node 18 (the base image's) has no global Web Crypto; the SDK uses it
(globalThis as { crypto?: unknown }).crypto ??= webcrypto;

const API = (process.env.GMAIL_API_URL ?? "https://gmail.googleapis.com").replace(/\/+$/, "");

const TOOLS = [
  {
    name: "send_email",
    description: "Send an email using Gmail. No sender is needed (the connected account sends it): give the recipient address in 'to', a subject and a plain-text body.",
    inputSchema: {
      type: "object" as const,
      properties: { to: { type: "string", description: "Recipient email address" }, subject: { type: "string" }, body: { type: "string" } },
      required: ["to", "subject", "body"],
    },
  },
];

/** A header value: no line breaks (no header injection); non-ASCII as an RFC 2047 encoded word. */
function header(v: string): string {
  if (/[\r\n]/.test(v)) throw new Error("header values must not contain line breaks");
  return /^[\x20-\x7e]*$/.test(v) ? v : `=?UTF-8?B?${Buffer.from(v, "utf8").toString("base64")}?=`;
}

/** The RFC 2822 message Gmail's messages.send takes as `raw` (base64url). */
export function rfc2822(to: string, subject: string, body: string): string {
  const text = [`To: ${header(to)}`, `Subject: ${header(subject)}`, "MIME-Version: 1.0", 'Content-Type: text/plain; charset="UTF-8"', "Content-Transfer-Encoding: base64", "", Buffer.from(body, "utf8").toString("base64")].join("\r\n");
  return Buffer.from(text, "utf8").toString("base64url");
}

async function sendEmail(args: Record<string, unknown>) {
  const { to, subject, body } = args;
  if (typeof to !== "string" || !/^[^\s@<>]+@[^\s@<>]+$/.test(to)) return fail("'to' must be one email address");
  if (typeof subject !== "string" || typeof body !== "string") return fail("'subject' and 'body' must be strings");
  let raw: string;
  try {
    raw = rfc2822(to, subject, body);
  } catch (e) {
    return fail((e as Error).message);
  }
  let res: Response;
  try {
    res = await fetch(`${API}/gmail/v1/users/me/messages/send`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ raw }) });
  } catch (e) {
    return fail(`the Gmail API is unreachable: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) return fail(`the Gmail API answered ${res.status}: ${text.slice(0, 500)}`);
  let id = "";
  try {
    id = String((JSON.parse(text) as { id?: unknown }).id ?? "");
  } catch {
    // not JSON: no id to report
  }
  return { content: [{ type: "text" as const, text: `Email sent to ${to}${id ? ` (message id ${id})` : ""}` }] };
}

function fail(message: string) {
  return { content: [{ type: "text" as const, text: `send_email failed: ${message}` }], isError: true };
}

function mcpServer(): Server {
  const s = new Server({ name: "gmail", version: "1.0.0" }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  s.setRequestHandler(CallToolRequestSchema, async (req) => {
    if (req.params.name === "send_email") return sendEmail(req.params.arguments ?? {});
    return fail(`unknown tool ${req.params.name}`);
  });
  return s;
}

/** Serves the tools on $HOST:$PORT/mcp: stateless, one server and transport per request, JSON responses. */
export function startGmailServer(port: number, host: string): void {
  createServer((req, res) => {
    if (!(req.url ?? "").startsWith("/mcp")) {
      res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "application/json" }).end(JSON.stringify({ name: "gmail", transport: "http-stream", endpoint: "/mcp" }));
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" }).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      void (async () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null }));
          return;
        }
        const s = mcpServer();
        const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        res.on("close", () => void t.close().then(() => s.close()));
        await s.connect(t);
        await t.handleRequest(req, res, body);
      })().catch((e: Error) => {
        process.stderr.write(`[gmail-mcp] ${e.message}\n`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }).listen(port, host);
}
