import { describe, expect, it } from "vitest";
import { ChunkDecoder, execEventLine, execResultLine, LogLineFormatter } from "./stream-format.js";

describe("exec NDJSON (§5.4 A)", () => {
  it("writes one JSON object per line; result data is a JSON string", () => {
    expect(execEventLine("stdout", "hi\n")).toBe('{"type":"stdout","data":"hi\\n"}\n');
    expect(execEventLine("keepalive")).toBe('{"type":"keepalive"}\n');
    const line = execResultLine({ pid: "1", status: "completed" });
    const parsed = JSON.parse(line) as { type: string; data: string };
    expect(parsed.type).toBe("result");
    expect(JSON.parse(parsed.data)).toEqual({ pid: "1", status: "completed" });
  });
  it("keeps multi-byte characters split across chunks intact", () => {
    const d = new ChunkDecoder();
    const bytes = Buffer.from("é");
    expect(d.write({ stream: 1, data: bytes.subarray(0, 1) })).toBe("");
    expect(d.write({ stream: 1, data: bytes.subarray(1) })).toBe("é");
  });
});

describe("log stream lines (§5.4 B)", () => {
  it("prefixes every complete line and holds partial lines per stream", () => {
    const f = new LogLineFormatter();
    expect(f.push({ stream: 1, data: Buffer.from("a\nb") })).toBe("stdout:a\n");
    expect(f.push({ stream: 2, data: Buffer.from("e1\n") })).toBe("stderr:e1\n");
    expect(f.push({ stream: 1, data: Buffer.from("c\nd\n") })).toBe("stdout:bc\nstdout:d\n");
    expect(f.push({ stream: 1, data: Buffer.from("tail") })).toBe("");
    expect(f.hasPartial).toBe(true);
    expect(f.flushPartial(true)).toBe("stdout:tail\n");
  });
  it("writes notices unprefixed on their own line", () => {
    const f = new LogLineFormatter();
    expect(f.push({ stream: 1, data: Buffer.from("x") })).toBe("");
    expect(f.push({ stream: 0, data: Buffer.from("\n[Process is being gracefully terminated]\n") })).toBe("stdout:x\n[Process is being gracefully terminated]\n");
  });
});
