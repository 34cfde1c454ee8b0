// Token usage as providers report it, in one shape: OpenAI chat (prompt/completion), OpenAI
// Responses and Anthropic (input/output), Gemini (usageMetadata), Cohere (usage.tokens). Streams
// report it in events (a last chunk, response.completed, message_start + message_delta); counts
// there are cumulative, so the largest value seen per field is the request's.

export interface TokenUsage {
  input: number;
  output: number;
  total: number;
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

/** The usage object of one response document or stream event, if it has one. */
function usageOf(doc: Record<string, unknown>): Record<string, unknown> | null {
  const pick = (v: unknown) => (v && typeof v === "object" ? (v as Record<string, unknown>) : null);
  return (
    pick(doc.usage) ??
    pick(pick(doc.response)?.usage) ?? // Responses API events
    pick(pick(doc.message)?.usage) ?? // Anthropic message_start
    pick(pick(doc.delta)?.usage) ?? // Cohere message-end
    pick(doc.usageMetadata) // Gemini
  );
}

/** Reads one document's usage into `into` (largest value per field). True when it had any. */
export function mergeUsage(into: TokenUsage, doc: unknown): boolean {
  if (!doc || typeof doc !== "object") return false;
  let u = usageOf(doc as Record<string, unknown>);
  if (!u) return false;
  if (u.tokens && typeof u.tokens === "object") u = u.tokens as Record<string, unknown>; // Cohere v2
  const input = num(u.prompt_tokens) || num(u.input_tokens) || num(u.promptTokenCount);
  const cached = num(u.cache_read_input_tokens) + num(u.cache_creation_input_tokens); // Anthropic counts these apart
  const output = num(u.completion_tokens) || num(u.output_tokens) || num(u.candidatesTokenCount);
  const total = num(u.total_tokens) || num(u.totalTokenCount);
  into.input = Math.max(into.input, input + cached);
  into.output = Math.max(into.output, output);
  into.total = Math.max(into.total, total, into.input + into.output);
  return true;
}

/**
 * Follows a Server-Sent Events stream chunk by chunk and reads the usage of its events. Only
 * `data:` lines that mention usage are parsed. With `dropUsageOnly`, it also returns each chunk
 * without the events that carry usage and no choices (the chunk OpenAI adds for
 * `stream_options.include_usage`, when the gateway asked for it and the client did not).
 */
export class SseUsageScanner {
  readonly usage: TokenUsage = { input: 0, output: 0, total: 0 };
  seen = false;
  private partial = "";
  private readonly decoder = new TextDecoder();

  constructor(private readonly dropUsageOnly = false) {}

  /** Scans a chunk; returns what to send on (the chunk itself unless usage-only events are dropped). */
  push(chunk: Buffer): Buffer | string {
    const text = this.decoder.decode(chunk, { stream: true });
    if (!this.dropUsageOnly) {
      // only complete lines are scanned; the tail waits for the next chunk
      const all = this.partial + text;
      const cut = all.lastIndexOf("\n");
      if (cut < 0) {
        this.partial = all;
        return chunk;
      }
      this.partial = all.slice(cut + 1);
      if (all.includes("usage")) this.scanLines(all.slice(0, cut));
      return chunk;
    }
    // event by event: complete events go on (those to drop removed), the tail waits
    const all = this.partial + text;
    const end = Math.max(all.lastIndexOf("\n\n"), all.lastIndexOf("\r\n\r\n"));
    if (end < 0) {
      this.partial = all;
      return "";
    }
    const boundary = all.startsWith("\r\n\r\n", end) ? end + 4 : end + 2;
    this.partial = all.slice(boundary);
    const complete = all.slice(0, boundary);
    if (!complete.includes("usage")) return complete;
    return complete
      .split(/(?<=\n\n|\r\n\r\n)/)
      .filter((ev) => {
        const doc = this.scanLines(ev);
        return !(doc && Array.isArray(doc.choices) && doc.choices.length === 0 && doc.usage);
      })
      .join("");
  }

  /** What is left when the stream ends. */
  end(): string {
    const rest = this.partial + this.decoder.decode();
    this.partial = "";
    if (rest.includes("usage")) this.scanLines(rest);
    return this.dropUsageOnly ? rest : "";
  }

  /** Reads the usage of the data lines; returns the last document parsed. */
  private scanLines(text: string): Record<string, unknown> | null {
    let last: Record<string, unknown> | null = null;
    for (const line of text.split("\n")) {
      if (!line.startsWith("data:") || !line.includes("usage")) continue;
      try {
        const doc = JSON.parse(line.slice(5)) as Record<string, unknown>;
        if (mergeUsage(this.usage, doc)) this.seen = true;
        last = doc;
      } catch {
        // not JSON: nothing to count
      }
    }
    return last;
  }
}
