// Terminal (wire spec §5.4 D): a WebSocket at /terminal/ws carrying JSON messages
// {"type":"input"|"output"|"resize"|"error", data?, cols?, rows?} (binary frames are raw input),
// and a minimal HTML page at GET /terminal.

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import type { Logger } from "@hangar/common";
import { HangarError } from "@hangar/common";
import { resolvePath } from "../paths.js";
import type { SandboxServices } from "../services.js";
import { toHangarError } from "../http.js";
import { StringDecoder } from "node:string_decoder";

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sandbox terminal</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@xterm/xterm@5.5.0/css/xterm.min.css">
<style>html,body{margin:0;height:100%;background:#111;color:#ddd;font-family:monospace}#t{height:100%}#f{white-space:pre-wrap;padding:8px}</style>
</head><body><div id="t"></div>
<script src="https://cdn.jsdelivr.net/npm/@xterm/xterm@5.5.0/lib/xterm.min.js"></script>
<script>
(function () {
  var base = location.pathname.replace(/\\/$/, "");
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "/ws" + location.search;
  var el = document.getElementById("t");
  var term = window.Terminal ? new window.Terminal({ cursorBlink: true }) : null;
  var cols = 100, rows = 30;
  if (term) { term.open(el); cols = term.cols; rows = term.rows; }
  var sep = url.indexOf("?") < 0 ? "?" : "&";
  var ws = new WebSocket(url + sep + "cols=" + cols + "&rows=" + rows);
  function show(s) { if (term) term.write(s); else { el.id = "f"; el.textContent += s; } }
  ws.onmessage = function (ev) {
    var m = JSON.parse(ev.data);
    if (m.type === "output") show(m.data);
    else if (m.type === "error") show("\\r\\n[error] " + m.data + "\\r\\n");
  };
  ws.onclose = function (ev) { show("\\r\\n[connection closed" + (ev.reason ? ": " + ev.reason : "") + "]\\r\\n"); };
  if (term) {
    term.onData(function (d) { ws.send(JSON.stringify({ type: "input", data: d })); });
    term.onResize(function (s) { ws.send(JSON.stringify({ type: "resize", cols: s.cols, rows: s.rows })); });
  } else {
    document.addEventListener("keydown", function (e) {
      var d = e.key.length === 1 ? e.key : e.key === "Enter" ? "\\r" : e.key === "Backspace" ? "\\x7f" : "";
      if (d) ws.send(JSON.stringify({ type: "input", data: d }));
    });
  }
})();
</script></body></html>`;

export async function terminalPageRoutes(app: FastifyInstance): Promise<void> {
  app.get("/terminal", async (_req, reply) => reply.type("text/html; charset=utf-8").send(PAGE));
  app.get("/terminal/ws", async () => {
    throw new HangarError("bad_request", "GET /terminal/ws is a WebSocket endpoint: send an Upgrade: websocket request");
  });
}

function intParam(v: string | null, dflt: number, min: number, max: number): number {
  const n = v === null ? NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : dflt;
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? "Not Found" : "Bad Request"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** Accepts WebSocket upgrades for /terminal/ws and runs the session. */
export function createTerminalUpgrade(logger: Logger) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  return function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, s: SandboxServices): void {
    const url = new URL(req.url ?? "/", "http://sandbox");
    if (url.pathname !== "/terminal/ws") {
      rejectUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}; use /terminal/ws`);
      return;
    }
    const q = url.searchParams;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const endActivity = s.beginActivity();
      ws.once("close", endActivity);
      void runTerminal(ws, s, {
        cols: intParam(q.get("cols"), 80, 1, 1000),
        rows: intParam(q.get("rows"), 24, 1, 1000),
        shell: q.get("shell") || undefined,
        workingDir: q.get("workingDir") || undefined,
        sessionId: q.get("sessionId") || undefined,
      }).catch((e: unknown) => {
        logger.warn({ err: e }, "terminal session failed");
        if (ws.readyState === ws.OPEN) ws.close(1011, "terminal failed");
      });
    });
  };
}

interface TerminalParams {
  cols: number;
  rows: number;
  shell?: string;
  workingDir?: string;
  sessionId?: string;
}

async function runTerminal(ws: WebSocket, s: SandboxServices, p: TerminalParams): Promise<void> {
  const send = (m: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  };
  // Messages that arrive while the shell is starting are kept and handled once it runs.
  const early: Array<[RawData, boolean]> = [];
  let handle: ((raw: RawData, isBinary: boolean) => void) | null = null;
  ws.on("message", (raw: RawData, isBinary: boolean) => {
    if (handle) handle(raw, isBinary);
    else early.push([raw, isBinary]);
  });
  let opened;
  try {
    const cwd = p.workingDir ? resolvePath(p.workingDir, s.paths) : s.image.workingDir;
    const st = await s.files.statOrNull(cwd);
    if (!st || st.type !== "directory") throw new HangarError("validation_failed", `workingDir '${cwd}' is not an existing directory`);
    opened = await s.terminals.open({ sessionId: p.sessionId, shell: p.shell, cwd, cols: p.cols, rows: p.rows });
  } catch (e) {
    send({ type: "error", data: toHangarError(e).message });
    ws.close(1011, "could not start the terminal");
    return;
  }
  const { session, reattached } = opened;
  session.attached = true;
  const decoder = new StringDecoder("utf8");
  if (reattached) {
    const replay = session.replay();
    if (replay.length) send({ type: "output", data: replay.toString("utf8") });
  }
  const onOutput = (data: Buffer) => {
    const text = decoder.write(data);
    if (text) send({ type: "output", data: text });
  };
  const onExit = (code: number | null) => {
    const rest = decoder.end();
    if (rest) send({ type: "output", data: rest });
    if (ws.readyState === ws.OPEN) ws.close(1000, `shell exited${code === null ? "" : ` with code ${code}`}`);
  };
  session.on("output", onOutput);
  session.once("exit", onExit);
  handle = (raw: RawData, isBinary: boolean) => {
    const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw as ArrayBuffer);
    if (isBinary) {
      void session.input(buf).catch((e: unknown) => send({ type: "error", data: toHangarError(e).message }));
      return;
    }
    let m: { type?: string; data?: unknown; cols?: unknown; rows?: unknown };
    try {
      m = JSON.parse(buf.toString("utf8")) as typeof m;
    } catch {
      send({ type: "error", data: "messages must be JSON: {\"type\":\"input\",\"data\":\"...\"} or {\"type\":\"resize\",\"cols\":N,\"rows\":N}" });
      return;
    }
    if (m.type === "input" && typeof m.data === "string") {
      void session.input(Buffer.from(m.data, "utf8")).catch((e: unknown) => send({ type: "error", data: toHangarError(e).message }));
    } else if (m.type === "resize") {
      const cols = Number(m.cols);
      const rows = Number(m.rows);
      if (Number.isInteger(cols) && Number.isInteger(rows) && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000) void session.resize(cols, rows);
      else send({ type: "error", data: "resize needs integer cols and rows between 1 and 1000" });
    } else if (m.type !== "ping") {
      send({ type: "error", data: `unknown message type ${JSON.stringify(m.type)}` });
    }
  };
  for (const [raw, isBinary] of early.splice(0)) handle(raw, isBinary);
  ws.once("close", () => {
    session.off("output", onOutput);
    session.off("exit", onExit);
    s.terminals.detach(session);
  });
  if (session.exited) onExit(session.exitCode);
}
