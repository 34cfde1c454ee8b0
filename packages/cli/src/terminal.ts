// `hangar connect`: the local terminal bridged to a PTY in the sandbox over /terminal/ws.

import WebSocket from "ws";

/** Opens a terminal session; resolves with the exit code to use when it closes. */
export function connectTerminal(sandboxUrl: string, token: string, headers: Record<string, string>, shell?: string): Promise<number> {
  const cols = process.stdout.columns ?? 80;
  const rows = process.stdout.rows ?? 24;
  const u = new URL(`${sandboxUrl.replace(/^http/, "ws")}/terminal/ws`);
  u.searchParams.set("token", token);
  u.searchParams.set("cols", String(cols));
  u.searchParams.set("rows", String(rows));
  if (shell) u.searchParams.set("shell", shell);
  const ws = new WebSocket(u, { headers });
  const stdin = process.stdin;
  return new Promise((resolve) => {
    const restore = () => {
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
    };
    ws.on("open", () => {
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.resume();
      stdin.on("data", (d: Buffer) => ws.send(JSON.stringify({ type: "input", data: d.toString("utf8") })));
      process.stdout.on("resize", () => ws.send(JSON.stringify({ type: "resize", cols: process.stdout.columns, rows: process.stdout.rows })));
    });
    ws.on("message", (raw) => {
      let m: { type?: string; data?: string };
      try {
        m = JSON.parse(String(raw)) as typeof m;
      } catch {
        return;
      }
      if (m.type === "output") process.stdout.write(m.data ?? "");
      else if (m.type === "error") process.stderr.write(`\r\n[terminal error] ${m.data ?? ""}\r\n`);
    });
    ws.on("unexpected-response", (_req, res) => {
      process.stderr.write(`error: terminal refused with HTTP ${res.statusCode}\n`);
      restore();
      resolve(1);
    });
    ws.on("error", (e) => {
      process.stderr.write(`error: ${e.message}\n`);
      restore();
      resolve(1);
    });
    ws.on("close", () => {
      restore();
      resolve(0);
    });
  });
}
