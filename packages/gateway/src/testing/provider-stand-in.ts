// A stand-in model provider on loopback for tests and the bench: OpenAI-compatible (chat
// completions, Responses, embeddings, models; streamed or not) and Anthropic-shaped (messages).
// It answers fixed text with fixed usage, records what it was sent, and misbehaves on request:
// model "fail-500" answers 500, model "slow" never answers.

import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown> | null;
}

export interface ProviderStandIn {
  url: string;
  port: number;
  /** Requests received (when recording). */
  seen: SeenRequest[];
  close(): Promise<void>;
}

export interface StandInOptions {
  /** Pause between streamed chunks. Default 0. */
  chunkDelayMs?: number;
  /** Keep the requests in `seen`. Default true. */
  record?: boolean;
}

/** What every completion says, in the pieces streams send. */
export const STAND_IN_PIECES = ["Hello", " from", " the", " stand-in"];
export const STAND_IN_TEXT = STAND_IN_PIECES.join("");
/** The usage every answer reports. */
export const STAND_IN_USAGE = { input: 10, output: 5 };

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

export async function startProviderStandIn(opts: StandInOptions = {}): Promise<ProviderStandIn> {
  const seen: SeenRequest[] = [];
  const delay = opts.chunkDelayMs ?? 0;
  const held = new Set<ServerResponse>();
  const { input, output } = STAND_IN_USAGE;

  const sse = async (res: ServerResponse, events: (string | [string, unknown])[]) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (const e of events) {
      res.write(typeof e === "string" ? `data: ${e}\n\n` : `${e[0] ? `event: ${e[0]}\n` : ""}data: ${JSON.stringify(e[1])}\n\n`);
      await sleep(delay);
    }
    res.end();
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: string) => {
    let body: Record<string, unknown> | null = null;
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
    } catch {
      // not JSON
    }
    const path = (req.url ?? "/").split("?")[0]!;
    if (opts.record !== false) seen.push({ method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body });
    const model = String(body?.model ?? "stand-in-model");
    if (model === "fail-500") return json(res, 500, { error: { message: "the stand-in broke", type: "server_error", code: null } });
    if (model === "slow") return void held.add(res);
    const stream = body?.stream === true;
    const created = Math.floor(Date.now() / 1000);

    if (req.method === "GET" && path === "/v1/models") return json(res, 200, { object: "list", data: [{ id: "stand-in-model", object: "model", owned_by: "stand-in" }] });
    if (path === "/v1/chat/completions") {
      const id = `chatcmpl-${created}`;
      if (!stream) {
        return json(res, 200, {
          id,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: STAND_IN_TEXT }, finish_reason: "stop" }],
          usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
        });
      }
      const withUsage = (body?.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
        JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...(withUsage ? { usage: null } : {}) });
      const events = [chunk({ role: "assistant", content: "" }), ...STAND_IN_PIECES.map((p) => chunk({ content: p })), chunk({}, "stop")];
      if (withUsage) events.push(JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output } }));
      events.push("[DONE]");
      return sse(res, events);
    }
    if (path === "/v1/responses") {
      const id = `resp_${created}`;
      const message = { id: "msg_1", type: "message", status: "completed", role: "assistant", content: [{ type: "output_text", text: STAND_IN_TEXT, annotations: [] }] };
      const response = (status: string, done: boolean) => ({
        id,
        object: "response",
        created_at: created,
        status,
        model,
        output: done ? [message] : [],
        usage: done ? { input_tokens: input, output_tokens: output, total_tokens: input + output, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } } : null,
      });
      if (!stream) return json(res, 200, response("completed", true));
      let seq = 0;
      return sse(res, [
        ["response.created", { type: "response.created", sequence_number: seq++, response: response("in_progress", false) }],
        ["response.output_item.added", { type: "response.output_item.added", sequence_number: seq++, output_index: 0, item: { ...message, status: "in_progress", content: [] } }],
        ...STAND_IN_PIECES.map((p): [string, unknown] => ["response.output_text.delta", { type: "response.output_text.delta", sequence_number: seq++, item_id: "msg_1", output_index: 0, content_index: 0, delta: p }]),
        ["response.output_item.done", { type: "response.output_item.done", sequence_number: seq++, output_index: 0, item: message }],
        ["response.completed", { type: "response.completed", sequence_number: seq++, response: response("completed", true) }],
      ]);
    }
    if (path === "/v1/embeddings") {
      const inputs = Array.isArray(body?.input) ? (body!.input as unknown[]) : [body?.input];
      const vector = [0.1, 0.2, 0.3];
      // the openai client asks for base64 (little-endian float32) unless told otherwise
      const embedding = body?.encoding_format === "base64" ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector;
      return json(res, 200, { object: "list", model, data: inputs.map((_, index) => ({ object: "embedding", index, embedding })), usage: { prompt_tokens: input, total_tokens: input } });
    }
    if (path === "/v1/messages") {
      const message = { id: "msg_1", type: "message", role: "assistant", model, content: [{ type: "text", text: STAND_IN_TEXT }], stop_reason: "end_turn", stop_sequence: null, usage: { input_tokens: input, output_tokens: output } };
      if (!stream) return json(res, 200, message);
      return sse(res, [
        ["message_start", { type: "message_start", message: { ...message, content: [], stop_reason: null, usage: { input_tokens: input, output_tokens: 1 } } }],
        ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
        ...STAND_IN_PIECES.map((p): [string, unknown] => ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: p } }]),
        ["content_block_stop", { type: "content_block_stop", index: 0 }],
        ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: output } }],
        ["message_stop", { type: "message_stop" }],
      ]);
    }
    json(res, 404, { error: { message: `the stand-in has no ${req.method} ${path}`, type: "invalid_request_error" } });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => void handle(req, res, Buffer.concat(chunks).toString("utf8")).catch(() => res.destroy()));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    async close() {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export { OAuthStandIn, type OAuthStandInOptions } from "./oauth-stand-in.js";
