// Local code search without an external model: files under a directory are cut into overlapping
// line windows and ranked with BM25 (MiniSearch's BM25+) using a code-aware tokenizer that splits
// camelCase, snake_case and paths. The index is kept per directory and refreshed incrementally
// (only files whose size or mtime changed are read again).

import MiniSearch from "minisearch";
import type { AgentClient } from "@hangar/sandbox-agent";
import { walk, DEFAULT_EXCLUDE_DIRS } from "./walker.js";

export interface CodeChunk {
  id: string;
  path: string;
  startLine: number;
  endLine: number;
  text: string;
}

export interface ChunkHit {
  path: string;
  startLine: number;
  endLine: number;
  score: number;
  text: string;
}

const WINDOW = 40;
const STRIDE = 30;
const MAX_FILE_BYTES = 512 * 1024;
const MAX_FILES = 5_000;
const MAX_INDEX_BYTES = 32 * 1024 * 1024;
const INDEX_TTL_MS = 10 * 60_000;

const BINARY_EXT = /\.(png|jpe?g|gif|webp|ico|bmp|pdf|zip|gz|tgz|bz2|xz|7z|tar|jar|class|so|dylib|dll|exe|bin|o|a|wasm|mp[34]|mov|avi|woff2?|ttf|otf|eot|pyc|lock|sqlite|db)$/i;

/** Splits text into search terms: words, camelCase/PascalCase parts, digits; lower-cased. */
export function codeTokens(text: string): string[] {
  const out: string[] = [];
  for (const word of text.match(/[\p{L}\p{N}_$]+/gu) ?? []) {
    const lower = word.toLowerCase();
    out.push(lower);
    const parts = word
      .split(/_+|\$/)
      .flatMap((p) => p.split(/(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])/))
      .filter((p) => p.length > 0);
    if (parts.length > 1) for (const p of parts) out.push(p.toLowerCase());
  }
  return out;
}

/** Cuts a file into overlapping windows of lines. */
export function chunkFile(path: string, content: string): CodeChunk[] {
  const lines = content.split("\n");
  const chunks: CodeChunk[] = [];
  for (let start = 0; start < lines.length; start += STRIDE) {
    const end = Math.min(lines.length, start + WINDOW);
    const text = lines.slice(start, end).join("\n");
    if (text.trim() !== "") chunks.push({ id: `${path}#${start + 1}`, path, startLine: start + 1, endLine: end, text });
    if (end === lines.length) break;
  }
  return chunks;
}

interface FileState {
  size: number;
  mtimeMs: number;
  chunkIds: string[];
}

class DirectoryIndex {
  readonly search = new MiniSearch<CodeChunk>({
    fields: ["path", "text"],
    storeFields: ["path", "startLine", "endLine"],
    tokenize: codeTokens,
    processTerm: (t) => t,
    searchOptions: { boost: { path: 2 }, tokenize: codeTokens, processTerm: (t) => t },
  });
  readonly files = new Map<string, FileState>();
  usedAt = Date.now();
  refreshing: Promise<void> | null = null;
}

export class CodeIndex {
  private readonly indexes = new Map<string, DirectoryIndex>();

  constructor(private readonly agent: AgentClient) {}

  private get(root: string): DirectoryIndex {
    let idx = this.indexes.get(root);
    if (!idx) {
      idx = new DirectoryIndex();
      this.indexes.set(root, idx);
    }
    idx.usedAt = Date.now();
    for (const [k, v] of this.indexes) if (Date.now() - v.usedAt > INDEX_TTL_MS) this.indexes.delete(k);
    return idx;
  }

  /** Brings the index of `root` up to date with the files now there. */
  async refresh(root: string): Promise<DirectoryIndex> {
    const idx = this.get(root);
    if (idx.refreshing) {
      await idx.refreshing;
      return idx;
    }
    idx.refreshing = (async () => {
      const seen = new Set<string>();
      const toRead: Array<{ rel: string; path: string; size: number; mtimeMs: number }> = [];
      let bytes = 0;
      for await (const e of walk(this.agent, root, { excludeDirs: new Set(DEFAULT_EXCLUDE_DIRS), excludeHidden: true })) {
        if (e.type !== "file" || e.size > MAX_FILE_BYTES || e.size === 0 || BINARY_EXT.test(e.name)) continue;
        if (seen.size >= MAX_FILES || bytes + e.size > MAX_INDEX_BYTES) break;
        seen.add(e.rel);
        bytes += e.size;
        const known = idx.files.get(e.rel);
        if (known && known.size === e.size && known.mtimeMs === e.mtimeMs) continue;
        toRead.push({ rel: e.rel, path: e.path, size: e.size, mtimeMs: e.mtimeMs });
      }
      for (const [rel, st] of idx.files) {
        if (!seen.has(rel)) {
          for (const id of st.chunkIds) idx.search.discard(id);
          idx.files.delete(rel);
        }
      }
      let next = 0;
      const worker = async () => {
        while (next < toRead.length) {
          const f = toRead[next++]!;
          const data = await this.agent.readFile(f.path).catch(() => null);
          const old = idx.files.get(f.rel);
          if (old) for (const id of old.chunkIds) idx.search.discard(id);
          idx.files.delete(f.rel);
          if (!data || data.subarray(0, 8192).includes(0)) continue;
          const content = data.toString("utf8");
          const chunks = chunkFile(f.rel, content);
          idx.search.addAll(chunks);
          idx.files.set(f.rel, { size: f.size, mtimeMs: f.mtimeMs, chunkIds: chunks.map((c) => c.id) });
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
    })().finally(() => {
      idx.refreshing = null;
    });
    await idx.refreshing;
    return idx;
  }

  private async readText(root: string, rel: string): Promise<string> {
    const data = await this.agent.readFile(root === "/" ? `/${rel}` : `${root}/${rel}`).catch(() => null);
    return data ? data.toString("utf8") : "";
  }

  /** Best matching chunks for a natural-language or identifier query, with their text. */
  async searchChunks(root: string, query: string, limit: number, fileFilter?: (path: string) => boolean): Promise<ChunkHit[]> {
    const idx = await this.refresh(root);
    const results = idx.search.search(query, { combineWith: "OR", filter: fileFilter ? (r) => fileFilter(r.path as string) : undefined }).slice(0, limit);
    const texts = new Map<string, Promise<string>>();
    return Promise.all(
      results.map(async (r) => {
        const path = r.path as string;
        if (!texts.has(path)) texts.set(path, this.readText(root, path));
        const lines = (await texts.get(path)!).split("\n");
        const startLine = r.startLine as number;
        const endLine = r.endLine as number;
        return { path, startLine, endLine, score: r.score, text: lines.slice(startLine - 1, endLine).join("\n") };
      }),
    );
  }

  /** Files ranked by their best chunk score (highest first); `content` is read for the first `withContent`. */
  async rankFiles(root: string, query: string, withContent: number, fileFilter?: (path: string) => boolean): Promise<Array<{ path: string; score: number; content: string }>> {
    const idx = await this.refresh(root);
    const results = idx.search.search(query, { combineWith: "OR", filter: fileFilter ? (r) => fileFilter(r.path as string) : undefined });
    const best = new Map<string, number>();
    for (const r of results) {
      const p = r.path as string;
      best.set(p, Math.max(best.get(p) ?? 0, r.score));
    }
    const ranked = [...best].sort((a, b) => b[1] - a[1]);
    return Promise.all(ranked.map(async ([path, score], i) => ({ path, score, content: i < withContent ? await this.readText(root, path) : "" })));
  }
}
