// Programs the tests run inside sandboxes.

/**
 * A small web app for Node 18 (the base image's): a page (whose script is loaded by an absolute
 * path, as most apps do), an in-memory counter, a streamed response and a WebSocket echo
 * (hand-written handshake, so it needs no packages).
 */
export const WEB_APP = String.raw`
const http = require("http");
const crypto = require("crypto");
const port = Number(process.argv[2] || 3000);
let count = 0;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><html><head><title>sandbox app</title></head><body><h1 id="msg">Hello from the sandbox on port ' + port + '</h1><script>document.getElementById("msg").dataset.js = "ran";</script><script src="/static/app.js"></script></body></html>');
  } else if (url.pathname === "/static/app.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end('document.getElementById("msg").dataset.abs = "ran";');
  } else if (url.pathname === "/count") {
    count++;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(String(count));
  } else if (url.pathname === "/headers") {
    res.writeHead(200, { "content-type": "application/json", "x-app": "yes" });
    res.end(JSON.stringify({ headers: req.headers, url: req.url }));
  } else if (url.pathname === "/stream") {
    res.writeHead(200, { "content-type": "text/plain" });
    let i = 0;
    const t = setInterval(() => {
      res.write("chunk " + i + "\n");
      if (++i === 5) { clearInterval(t); res.end(); }
    }, 100);
  } else {
    res.writeHead(404);
    res.end("nope");
  }
});
server.on("upgrade", (req, socket) => {
  const key = req.headers["sec-websocket-key"];
  const accept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n");
  let buf = Buffer.alloc(0);
  socket.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { len = buf.readUInt16BE(2); off = 4; }
      const masked = (buf[1] & 0x80) !== 0;
      const total = off + (masked ? 4 : 0) + len;
      if (buf.length < total) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      const payload = Buffer.from(buf.subarray(off + (masked ? 4 : 0), total));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(total);
      if (op === 8) { socket.end(); return; }
      const reply = op === 9 ? 10 : op;
      const text = op === 1 ? Buffer.from("echo:" + payload.toString() + ":" + count) : payload;
      const head = text.length < 126 ? Buffer.from([0x80 | reply, text.length]) : Buffer.from([0x80 | reply, 126, text.length >> 8, text.length & 255]);
      socket.write(Buffer.concat([head, text]));
    }
  });
});
server.listen(port, "0.0.0.0");
`;

/** Starts the web app on `port` inside a sandbox and waits until it listens. */
export async function startWebApp(sandbox: { fs: { write(p: string, c: string): Promise<unknown> }; process: { exec(r: object): Promise<unknown> } }, port: number, name = `web-${port}`): Promise<void> {
  await sandbox.fs.write("/app/server.js", WEB_APP);
  await sandbox.process.exec({ name, command: `node /app/server.js ${port}`, waitForPorts: [port] });
}
