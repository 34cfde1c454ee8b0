// Peers the benchmarks measure against: nginx as a reverse proxy, wrk as the load generator.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./stats.js";

/** Requests per second wrk gets from `url` (2 threads, 32 connections); throws unless every answer was good. */
export async function wrk(url: string, seconds: number, headers: Record<string, string> = {}): Promise<number> {
  const out = await run("wrk", ["-t2", "-c32", `-d${seconds}s`, ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url]);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`unexpected wrk output: ${out}`);
  // a peer that failed (refused connections, error answers) must not count as a measurement
  if (!(Number(m[1]) > 0) || /Non-2xx or 3xx responses/.test(out)) throw new Error(`wrk against ${url} got no good answers: ${out}`);
  return Number(m[1]);
}

/** A TCP port free on loopback right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Waits until something accepts connections on 127.0.0.1:port. */
export async function untilListening(port: number, what: string, withinMs = 10_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const up = await new Promise<boolean>((r) => {
      const c = connect(port, "127.0.0.1", () => (c.destroy(), r(true)));
      c.on("error", () => r(false));
    });
    if (up) return;
    if (Date.now() - t0 > withinMs) throw new Error(`${what} is not listening on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs fn with nginx reverse-proxying 127.0.0.1:<port> to `upstream` ("ip:port", kept-alive connections). */
export async function withNginx<T>(upstream: string, fn: (port: number) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "hangar-bench-nginx-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "nginx.conf"),
    // workers as root: like Hangar's edge, only root's sockets may reach sandbox addresses
    `user root; worker_processes auto; pid ${dir}/nginx.pid; error_log ${dir}/error.log; daemon off;
events { worker_connections 1024; }
http { access_log off; upstream app { server ${upstream}; keepalive 64; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } } }
`,
  );
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const nginx = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { stdio: "ignore" });
  try {
    await untilListening(port, "nginx").catch((e: Error) => {
      throw new Error(`${e.message}: ${existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8").slice(-2000) : "no error log"}`);
    });
    return await fn(port);
  } finally {
    nginx.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}
