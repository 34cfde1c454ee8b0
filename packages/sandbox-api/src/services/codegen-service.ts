// Codegen helpers: fast-apply of sketched edits through Morph or Relace (when the sandbox env holds
// MORPH_API_KEY or RELACE_API_KEY), and local code ranking/search (BM25, no external model).

import { HangarError, type Logger } from "@hangar/common";
import type { FileService } from "./fs-service.js";
import type { CodeIndex, ChunkHit } from "./code-index.js";

export interface ApplyResult {
  success: boolean;
  message: string;
  path: string;
  originalContent: string;
  updatedContent: string;
  provider: string;
}

export interface RankedFile {
  path: string;
  score: number;
  content: string;
}

interface Provider {
  name: "Morph" | "Relace";
  apply(original: string, edit: string, model: string | undefined, smarter: boolean): Promise<string>;
}

const PROVIDER_TIMEOUT_MS = 120_000;

async function postJson(url: string, key: string, body: unknown, label: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
  } catch (e) {
    throw new HangarError("upstream_unreachable", `${label} API is not reachable: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new HangarError("unprocessable", `${label} API request failed with status ${res.status}: ${text.slice(0, 500)}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HangarError("unprocessable", `${label} API returned a body that is not JSON`);
  }
}

function morph(key: string, baseUrl: string, defaultModel: string | undefined): Provider {
  return {
    name: "Morph",
    async apply(original, edit, model, smarter) {
      const body = {
        model: model || (smarter ? "morph-v3-large" : defaultModel || "auto"),
        messages: [{ role: "user", content: `<code>${original}</code>\n<update>${edit}</update>` }],
        stream: false,
      };
      const out = (await postJson(`${baseUrl.replace(/\/+$/, "")}/chat/completions`, key, body, "Morph")) as { choices?: Array<{ message?: { content?: string } }> };
      const content = out.choices?.[0]?.message?.content;
      if (!content) throw new HangarError("unprocessable", "Morph API returned no content");
      return content;
    },
  };
}

function relace(key: string, url: string): Provider {
  return {
    name: "Relace",
    async apply(original, edit, model, smarter) {
      const body = { initial_code: original, edit_snippet: edit, model: model || (smarter ? "relace-apply-3" : "auto"), stream: false };
      const out = (await postJson(url, key, body, "Relace")) as { mergedCode?: string };
      if (!out.mergedCode) throw new HangarError("unprocessable", "Relace API returned no merged code");
      return out.mergedCode;
    },
  };
}

export class CodegenService {
  /** The last edit applied to each file, for reapply. */
  private readonly lastEdits = new Map<string, { codeEdit: string; instructions?: string }>();

  constructor(
    private readonly files: FileService,
    private readonly index: CodeIndex,
    private readonly env: () => Record<string, string>,
    private readonly logger: Logger,
  ) {}

  private provider(): Provider | null {
    const env = this.env();
    if (env.MORPH_API_KEY) return morph(env.MORPH_API_KEY, env.MORPH_API_URL || "https://api.morphllm.com/v1", env.MORPH_MODEL);
    if (env.RELACE_API_KEY) return relace(env.RELACE_API_KEY, env.RELACE_API_URL || "https://instantapply.endpoint.relace.run/v1/code/apply");
    return null;
  }

  private requireProvider(): Provider {
    const p = this.provider();
    if (!p) {
      throw new HangarError(
        "not_configured",
        "fast apply needs a Morph or Relace API key: create the sandbox with MORPH_API_KEY (optionally MORPH_MODEL) or RELACE_API_KEY in its envs",
      );
    }
    return p;
  }

  /** Applies a sketched edit (with "// ... existing code ..." markers) to `path`; creates the file if missing. */
  async fastApply(path: string, codeEdit: string, opts: { model?: string; instructions?: string; smarter?: boolean } = {}): Promise<ApplyResult> {
    if (!codeEdit) throw new HangarError("validation_failed", "codeEdit is required");
    const provider = this.requireProvider();
    const st = await this.files.statOrNull(path);
    if (st?.type === "directory") throw new HangarError("is_a_directory", `${path} is a directory`);
    const original = st ? (await this.files.readAll(path, st.size)).toString("utf8") : "";
    const edit = opts.instructions ? `// Instructions: ${opts.instructions}\n${codeEdit}` : codeEdit;
    const updated = await provider.apply(original, edit, opts.model, opts.smarter === true);
    await this.files.writeFile(path, Buffer.from(updated), st ? st.mode & 0o7777 : 0o644);
    this.lastEdits.set(path, { codeEdit, instructions: opts.instructions });
    this.logger.debug({ path, provider: provider.name }, "fast apply done");
    return { success: true, message: "Code edit applied successfully", path, originalContent: original, updatedContent: updated, provider: provider.name };
  }

  /** Applies the last edit of `path` again with the provider's stronger model. */
  async reapply(path: string): Promise<ApplyResult> {
    const last = this.lastEdits.get(path);
    if (!last) throw new HangarError("not_found", `no earlier edit of ${path} to reapply; use codegenEditFile first`);
    this.requireProvider();
    return this.fastApply(path, last.codeEdit, { instructions: last.instructions, smarter: true });
  }

  /** Files under `root` ranked against `query` (scores normalised to 0..1), within a token budget. */
  async rerank(root: string, query: string, opts: { scoreThreshold: number; tokenLimit: number; filePattern?: string }): Promise<RankedFile[]> {
    if (!query) throw new HangarError("validation_failed", "query is required");
    let filter: ((p: string) => boolean) | undefined;
    if (opts.filePattern) {
      let re: RegExp;
      try {
        re = new RegExp(opts.filePattern);
      } catch (e) {
        throw new HangarError("validation_failed", `filePattern is not a valid regular expression: ${(e as Error).message}`);
      }
      filter = (p) => re.test(p);
    }
    const ranked = await this.index.rankFiles(root, query, 50, filter);
    const top = ranked[0]?.score ?? 0;
    const out: RankedFile[] = [];
    let tokens = 0;
    for (const f of ranked) {
      const score = top > 0 ? f.score / top : 0;
      if (score < opts.scoreThreshold) break;
      const cost = Math.ceil(f.content.length / 4);
      if (out.length > 0 && tokens + cost > opts.tokenLimit) break;
      tokens += cost;
      out.push({ path: f.path, score: Math.round(score * 1000) / 1000, content: f.content });
      if (out.length >= 50) break;
    }
    return out;
  }

  /** The code snippets most relevant to `query` (BM25 over 40-line windows). */
  codebaseSearch(root: string, query: string, limit: number, fileFilter?: (p: string) => boolean): Promise<ChunkHit[]> {
    if (!query) throw new HangarError("validation_failed", "query is required");
    return this.index.searchChunks(root, query, limit, fileFilter);
  }
}
