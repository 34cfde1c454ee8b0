import { describe, expect, it } from "vitest";
import { SseUsageScanner, mergeUsage } from "./usage.js";

describe("usage", () => {
  it("reads every provider's usage shape", () => {
    const cases: [unknown, { input: number; output: number; total: number }][] = [
      [{ usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }, { input: 10, output: 5, total: 15 }], // OpenAI chat
      [{ usage: { input_tokens: 7, output_tokens: 3, total_tokens: 10 } }, { input: 7, output: 3, total: 10 }], // Responses
      [{ usage: { input_tokens: 7, output_tokens: 3, cache_read_input_tokens: 2 } }, { input: 9, output: 3, total: 12 }], // Anthropic
      [{ usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 6, totalTokenCount: 10 } }, { input: 4, output: 6, total: 10 }], // Gemini
      [{ usage: { tokens: { input_tokens: 2, output_tokens: 8 } } }, { input: 2, output: 8, total: 10 }], // Cohere v2
      [{ type: "response.completed", response: { usage: { input_tokens: 1, output_tokens: 2, total_tokens: 3 } } }, { input: 1, output: 2, total: 3 }],
    ];
    for (const [doc, want] of cases) {
      const u = { input: 0, output: 0, total: 0 };
      expect(mergeUsage(u, doc)).toBe(true);
      expect(u).toEqual(want);
    }
    expect(mergeUsage({ input: 0, output: 0, total: 0 }, { usage: null })).toBe(false);
  });

  it("follows a stream split anywhere, and counts Anthropic's cumulative events once", () => {
    const stream =
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\n';
    for (const size of [1, 7, 50, stream.length]) {
      const s = new SseUsageScanner();
      let out = "";
      for (let i = 0; i < stream.length; i += size) out += String(s.push(Buffer.from(stream.slice(i, i + size))));
      out += s.end();
      expect(out).toBe(stream);
      expect(s.usage).toEqual({ input: 12, output: 9, total: 21 });
    }
  });

  it("drops the usage-only chunk it asked for, and passes the rest unchanged", () => {
    const chunk = (c: string) => `data: {"choices":[{"index":0,"delta":{"content":"${c}"}}],"usage":null}\n\n`;
    const stream = chunk("a") + chunk("b") + 'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n' + "data: [DONE]\n\n";
    const s = new SseUsageScanner(true);
    let out = "";
    for (let i = 0; i < stream.length; i += 13) out += String(s.push(Buffer.from(stream.slice(i, i + 13))));
    out += s.end();
    expect(out).toBe(chunk("a") + chunk("b") + "data: [DONE]\n\n");
    expect(s.usage).toEqual({ input: 3, output: 2, total: 5 });
  });
});
