import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentBinaryPath } from "./binary.js";
import { FrameSplitter, FrameWriter, HEADER_BYTES, Msg, Op, PayloadReader, ProtocolError, readInfo } from "./protocol.js";
import { ensureBuilt, waitFor } from "../test/harness.js";

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

describe("frame splitter", () => {
  const frames = [
    new FrameWriter(Msg.OUTPUT, 7, 5).raw(Buffer.from("hello")).done(),
    new FrameWriter(Msg.EXIT, 7, 8).u32(3).u32(0).done(),
    new FrameWriter(Msg.OK, 9, 0).done(),
    new FrameWriter(Msg.OUTPUT, 8, 70_000).raw(Buffer.alloc(70_000, 1)).done(),
  ];
  const stream = Buffer.concat(frames);

  it("reassembles frames split at every byte boundary", () => {
    for (const step of [1, 2, 3, 5, 11, 12, 13, 4096, 65536, stream.length]) {
      const got: Frame[] = [];
      const s = new FrameSplitter(1 << 20, (type, flags, id, payload) => got.push({ type, flags, id, payload: Buffer.from(payload) }));
      for (let off = 0; off < stream.length; off += step) s.push(stream.subarray(off, off + step));
      expect(got.map((f) => [f.type, f.id, f.payload.length])).toEqual([
        [Msg.OUTPUT, 7, 5],
        [Msg.EXIT, 7, 8],
        [Msg.OK, 9, 0],
        [Msg.OUTPUT, 8, 70_000],
      ]);
      expect(got[0]!.payload.toString()).toBe("hello");
    }
  });

  it("rejects frames above the limit and truncated payload fields", () => {
    const s = new FrameSplitter(1024, () => {});
    const big = Buffer.alloc(HEADER_BYTES);
    big.writeUInt32LE(2048, 0);
    expect(() => s.push(big)).toThrow(ProtocolError);
    const r = new PayloadReader(Buffer.from([5, 0, 0, 0, 1, 2]));
    expect(() => r.str()).toThrow(ProtocolError);
  });
});

describe("agent facing a misbehaving host", () => {
  it("answers malformed requests with errors and keeps serving", async () => {
    ensureBuilt();
    const dir = await mkdtemp(join(tmpdir(), "hangar-proto-"));
    const sock = join(dir, "agent.sock");
    const conns: { socket: net.Socket; frames: Frame[] }[] = [];
    const server = net.createServer((socket) => {
      const c = { socket, frames: [] as Frame[] };
      const s = new FrameSplitter(8 << 20, (type, flags, id, payload) => c.frames.push({ type, flags, id, payload: Buffer.from(payload) }));
      socket.on("data", (d) => s.push(d));
      socket.on("error", () => {});
      conns.push(c);
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
    const agent = spawn(agentBinaryPath(), ["--socket", sock], { stdio: "ignore" });
    try {
      await waitFor(() => conns[0]?.frames[0], 3000, "HELLO");
      const c = conns[0]!;
      expect(c.frames[0]!.type).toBe(Msg.HELLO);
      expect(readInfo(new PayloadReader(c.frames[0]!.payload)).pid).toBe(agent.pid);

      // deterministic junk without '/' bytes, so no junk can name a real path
      let seed = 12345;
      const junk = (n: number) =>
        Buffer.from(Array.from({ length: n }, () => {
          seed = (seed * 1103515245 + 12345) >>> 0;
          const b = seed >>> 24;
          return b === 0x2f ? 0x30 : b;
        }));
      const ops = Object.values(Op).filter((op) => op !== Op.DETACH && op !== Op.LIST);
      let id = 0;
      const sent: number[] = [];
      for (const op of [...ops, 0x00, 0x3f, 0x7f, 0xff]) {
        for (const len of [0, 1, 3, 7, 13, 64, 300]) {
          const payload = junk(len);
          const w = new FrameWriter(op, ++id, len).raw(payload).done();
          c.socket.write(w);
          sent.push(id);
        }
      }
      c.socket.write(new FrameWriter(Op.PING, ++id, 0).done());
      await waitFor(() => c.frames.some((f) => f.id === id), 5000, "PING reply");
      const replies = new Map(c.frames.filter((f) => f.type === Msg.OK || f.type === Msg.ERR).map((f) => [f.id, f]));
      for (const s of sent) expect(replies.has(s), `reply to request ${s}`).toBe(true);
      const unknown = c.frames.find((f) => f.id === sent[sent.length - 1]);
      expect(unknown!.type).toBe(Msg.ERR);
      expect(unknown!.payload.readUInt32LE(0)).toBe(38); // ENOSYS

      // an oversized frame makes the agent drop the connection and dial again
      const huge = Buffer.alloc(HEADER_BYTES);
      huge.writeUInt32LE(64 << 20, 0);
      huge[4] = Op.PING;
      c.socket.write(huge);
      await waitFor(() => conns[1]?.frames[0], 3000, "reconnect after protocol error");
      expect(conns[1]!.frames[0]!.type).toBe(Msg.HELLO);
      conns[1]!.socket.write(new FrameWriter(Op.PING, 1, 0).done());
      await waitFor(() => conns[1]!.frames.find((f) => f.id === 1 && f.type === Msg.OK), 3000, "PING on the new connection");
    } finally {
      agent.kill("SIGKILL");
      for (const c of conns) c.socket.destroy();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
