// A thin HTTP client for the CLI: where the server is, which key and workspace, and errors
// turned into readable messages.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

export interface ClientConfig {
  url: string;
  apiKey: string | undefined;
  workspace: string;
}

export function configPath(): string {
  return process.env.HANGAR_CONFIG ?? join(homedir(), ".config", "hangar", "config.json");
}

export function readConfigFile(): Partial<ClientConfig> {
  const p = configPath();
  if (!existsSync(p)) return {};
  try {
    return JSON.parse(readFileSync(p, "utf8")) as Partial<ClientConfig>;
  } catch {
    throw new CliError(`${p} is not valid JSON; fix it or run 'hangar login' again`);
  }
}

export function writeConfigFile(cfg: ClientConfig): string {
  const p = configPath();
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  writeFileSync(p, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  return p;
}

/** Flags, then HANGAR_* variables, then the config file, then local defaults. */
export function resolveClientConfig(flags: { url?: string; apiKey?: string; workspace?: string }): ClientConfig {
  const file = readConfigFile();
  const env = (name: string) => process.env[name] || undefined;
  const url = (flags.url ?? env("HANGAR_URL") ?? file.url ?? `http://127.0.0.1:${env("HANGAR_PORT") ?? 8585}`).replace(/\/+$/, "");
  let apiKey = flags.apiKey ?? env("HANGAR_API_KEY") ?? file.apiKey;
  if (!apiKey) {
    // On the server's own machine, the admin key written at first start.
    const local = join(env("HANGAR_DATA_DIR") ?? (process.getuid?.() === 0 ? "/var/lib/hangar" : join(homedir(), ".local", "share", "hangar")), "admin-key");
    try {
      apiKey = readFileSync(local, "utf8").trim() || undefined;
    } catch {
      /* not readable: the request will say a key is needed */
    }
  }
  return { url, apiKey, workspace: flags.workspace ?? env("HANGAR_WORKSPACE") ?? file.workspace ?? "default" };
}

/** An error the CLI prints as one line and exits non-zero with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export class HangarClient {
  constructor(readonly cfg: ClientConfig) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { "x-blaxel-workspace": this.cfg.workspace, "Blaxel-Version": "2026-04-28", ...extra };
    if (this.cfg.apiKey) h["x-blaxel-authorization"] = `Bearer ${this.cfg.apiKey}`;
    return h;
  }

  /** Sends a request; non-2xx responses become CliErrors with the server's message. */
  async raw(method: string, url: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(body === undefined ? extraHeaders : { "content-type": "application/json", ...extraHeaders }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new CliError(`cannot reach Hangar at ${this.cfg.url} (${(e as Error).cause ? String((e as { cause: Error }).cause.message) : (e as Error).message}); is 'hangar serve' running?`);
    }
    if (!res.ok) {
      const text = await res.text();
      let msg = text;
      try {
        const p = JSON.parse(text) as { detail?: string; error?: string; hint?: string };
        msg = (p.detail ?? p.error ?? text) + (p.hint ? ` (${p.hint})` : "");
      } catch {
        /* not JSON: print as is */
      }
      throw new CliError(`${res.status}: ${msg}`);
    }
    return res;
  }

  async api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, `${this.cfg.url}/v0${path}`, body);
    return (await res.json()) as T;
  }

  /** The data-plane URL of a sandbox (its metadata.url). */
  async sandboxUrl(name: string): Promise<string> {
    const sb = await this.api<{ metadata: { url?: string } }>("GET", `/sandboxes/${encodeURIComponent(name)}`);
    return sb.metadata.url ?? `${this.cfg.url}/run/${encodeURIComponent(this.cfg.workspace)}/sandboxes/${encodeURIComponent(name)}`;
  }
}
