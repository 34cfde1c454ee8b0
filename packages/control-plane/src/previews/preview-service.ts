// Previews: a port of a sandbox published on its own URL, public or behind tokens. Sessions are
// previews of port 443, which serve the sandbox API itself. Custom domains route by Host header.
// In port mode every other preview holds a port of the host, allocated in the store.

import { HangarError, TtlCache, describeNameProblem, parseDuration, randomId, randomToken, sha256Hex } from "@hangar/common";
import {
  type CustomDomainRecord,
  type PreviewRecord,
  type PreviewTokenRecord,
  type SandboxRecord,
  type SecretBox,
  type Store,
  StoreConflictError,
  type WorkspaceRecord,
} from "@hangar/store";
import type { SandboxSpecDoc } from "../sandboxes/sandbox-spec.js";

/** Preview ports that serve the sandbox API itself (Blaxel's sessions use 443). */
export const API_PREVIEW_PORTS = new Set([443, 8080]);
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

/** Port mode: each preview of an app port is served on its own host port, from [first, last]. */
export interface PreviewHostPorts {
  first: number;
  last: number;
  /** Starts serving the port on this server; rejects when it cannot be bound. */
  open(port: number): Promise<void>;
  /** Stops serving the port. */
  close(port: number): void;
}

/** Ports a failed bind may skip before allocation gives up (the rest of the host holds them). */
const MAX_BIND_FAILURES = 64;

export interface PreviewInput {
  metadata?: { name?: unknown; displayName?: unknown };
  spec?: {
    port?: unknown;
    public?: unknown;
    prefixUrl?: unknown;
    customDomain?: unknown;
    requestHeaders?: unknown;
    responseHeaders?: unknown;
    expires?: unknown;
    ttl?: unknown;
  };
}

export interface TokenInput {
  metadata?: { name?: unknown };
  spec?: { expiresAt?: unknown };
}

function headerMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new HangarError("validation_failed", `${field}: must be an object of header names to string values`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw new HangarError("validation_failed", `${field}: ${JSON.stringify(k)} is not a valid header name`);
    if (typeof val !== "string" || /[\r\n]/.test(val)) throw new HangarError("validation_failed", `${field}.${k}: must be a single-line string`);
    out[k] = val;
  }
  return out;
}

function isoDate(v: unknown, field: string): string {
  if (typeof v !== "string" && !(v instanceof Date)) throw new HangarError("validation_failed", `${field}: must be an ISO-8601 date`);
  const t = new Date(v).getTime();
  if (Number.isNaN(t)) throw new HangarError("validation_failed", `${field}: must be an ISO-8601 date (got ${JSON.stringify(v)})`);
  return new Date(t).toISOString();
}

export function hashPreviewToken(token: string): string {
  return sha256Hex(`preview-token:${token}`);
}

export class PreviewService {
  /** Lookups of the data plane's hot path, kept a second and dropped on every change made here. */
  private readonly byLabelCache = new TtlCache<string, PreviewRecord | null>(1_000);
  private readonly tokenCache = new TtlCache<string, PreviewTokenRecord | null>(1_000);
  private readonly byHostPortCache = new TtlCache<number, PreviewRecord | null>(1_000);

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretBox,
    /** Set in port mode (no HANGAR_PREVIEW_DOMAIN). */
    private readonly hostPorts?: PreviewHostPorts,
  ) {}

  private changed(): void {
    this.byLabelCache.clear();
    this.tokenCache.clear();
    this.byHostPortCache.clear();
  }

  /** The preview served under a DNS label (cached for a second). */
  async byLabel(label: string): Promise<PreviewRecord | null> {
    return this.byLabelCache.getOrLoad(label, () => this.store.previews.getByLabel(label));
  }

  /** The preview served on a host port (cached for a second). */
  async byHostPort(port: number): Promise<PreviewRecord | null> {
    return this.byHostPortCache.getOrLoad(port, () => this.store.previews.getByHostPort(port));
  }

  /** Port mode: every preview but sessions (443, the sandbox API on a path URL) holds a host port. */
  private needsHostPort(port: number): boolean {
    return !!this.hostPorts && port !== 443;
  }

  /**
   * Gives a preview a host port: claimed in the store (unique), then bound here; a port something
   * else on the host holds is skipped. preview_ports_exhausted when the range has none left.
   */
  private async assignHostPort(p: PreviewRecord): Promise<PreviewRecord> {
    const hp = this.hostPorts!;
    const skip = new Set<number>();
    while (skip.size < MAX_BIND_FAILURES) {
      const port = await this.store.previews.claimHostPort(p.id, hp.first, hp.last, skip);
      if (port === null) break;
      try {
        await hp.open(port);
        this.changed();
        return { ...p, hostPort: port };
      } catch {
        skip.add(port);
      }
    }
    await this.store.previews.update(p.id, { hostPort: null });
    throw new HangarError("preview_ports_exhausted", `no preview port is free in ${hp.first}-${hp.last}${skip.size ? ` (${skip.size} of them are held by other programs on this host)` : ""}`);
  }

  /** A preview made before port mode (or in host-name mode) gets its host port when it is next read. */
  private async withHostPort(p: PreviewRecord): Promise<PreviewRecord> {
    return this.needsHostPort(p.port) && !p.hostPort ? this.assignHostPort(p) : p;
  }

  private normalize(ws: WorkspaceRecord, sbx: SandboxRecord, input: PreviewInput, existing?: PreviewRecord) {
    const spec = input.spec ?? {};
    if (typeof spec !== "object" || spec === null) throw new HangarError("validation_failed", "spec: must be an object");
    const port = spec.port ?? existing?.port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65_535) throw new HangarError("invalid_port", "spec.port: must be an integer between 1 and 65535");
    if (port === 80) throw new HangarError("invalid_port", "spec.port: port 80 is reserved for the platform");
    if (!API_PREVIEW_PORTS.has(port)) {
      const declared = ((sbx.spec as unknown as SandboxSpecDoc).runtime.ports ?? []).map((p) => p.target);
      if (!declared.includes(port)) {
        throw new HangarError("port_not_exposed", `spec.port: port ${port} was not exposed when sandbox '${sbx.name}' was created (exposed: ${declared.join(", ") || "none"})`);
      }
    }
    let prefixUrl: string | null = existing?.prefixUrl ?? null;
    if (spec.prefixUrl !== undefined) {
      if (spec.prefixUrl === null || spec.prefixUrl === "") prefixUrl = null;
      else if (typeof spec.prefixUrl !== "string" || !DNS_LABEL.test(spec.prefixUrl) || spec.prefixUrl.length > 40) {
        throw new HangarError("validation_failed", "spec.prefixUrl: must be 1 to 40 of lowercase letters, digits and '-'");
      } else prefixUrl = spec.prefixUrl;
    }
    let customDomain: string | null = existing?.customDomain ?? null;
    if (spec.customDomain !== undefined) {
      if (spec.customDomain === null || spec.customDomain === "") customDomain = null;
      else if (typeof spec.customDomain !== "string" || !HOSTNAME.test(spec.customDomain.toLowerCase())) {
        throw new HangarError("validation_failed", "spec.customDomain: must be a hostname such as app.example.com");
      } else customDomain = spec.customDomain.toLowerCase();
    }
    let expiresAt: string | null = existing?.expiresAt ?? null;
    if (spec.expires !== undefined) expiresAt = spec.expires === null || spec.expires === "" ? null : isoDate(spec.expires, "spec.expires");
    if (spec.ttl !== undefined && spec.ttl !== null && spec.ttl !== "") {
      if (typeof spec.ttl !== "string") throw new HangarError("validation_failed", 'spec.ttl: must be a duration such as "30m"');
      const ttlAt = new Date(Date.now() + parseDuration(spec.ttl, "spec.ttl")).toISOString();
      // with an `expires` in the same spec, the first met wins; alone, the ttl sets the expiry
      expiresAt = spec.expires !== undefined && expiresAt && expiresAt < ttlAt ? expiresAt : ttlAt;
    }
    return {
      port,
      public: spec.public === undefined ? (existing?.public ?? false) : spec.public === true,
      prefixUrl,
      customDomain,
      requestHeaders: spec.requestHeaders === undefined && existing ? existing.requestHeaders : headerMap(spec.requestHeaders, "spec.requestHeaders"),
      responseHeaders: spec.responseHeaders === undefined && existing ? existing.responseHeaders : headerMap(spec.responseHeaders, "spec.responseHeaders"),
      expiresAt,
      label: prefixUrl ? `${prefixUrl}-${ws.name}` : (existing?.label ?? randomId(20)),
    };
  }

  private async checkDomain(ws: WorkspaceRecord, domain: string | null): Promise<void> {
    if (!domain) return;
    if (!(await this.store.customDomains.findCovering(ws.id, domain))) {
      throw new HangarError("validation_failed", `spec.customDomain: ${domain} is not covered by a verified custom domain of workspace '${ws.name}'; register and verify it first`);
    }
  }

  async create(ws: WorkspaceRecord, sbx: SandboxRecord, input: PreviewInput, opts: { force?: boolean } = {}): Promise<PreviewRecord> {
    const md = input.metadata ?? {};
    const name = md.name === undefined || md.name === null || md.name === "" ? `preview-${randomId(8)}` : md.name;
    if (typeof name !== "string" || describeNameProblem(name)) throw new HangarError("invalid_name", `metadata.name: ${typeof name === "string" ? describeNameProblem(name) : "must be a string"}`);
    const existing = await this.store.previews.get(sbx.id, name);
    if (existing) {
      if (!opts.force) throw new HangarError("already_exists", `preview '${name}' already exists on sandbox '${sbx.name}'`);
      return this.update(ws, sbx, name, input);
    }
    const n = this.normalize(ws, sbx, input);
    await this.checkDomain(ws, n.customDomain);
    const now = new Date().toISOString();
    this.changed();
    let rec: PreviewRecord;
    try {
      rec = await this.store.previews.insert({ id: `pv_${randomId(16)}`, workspaceId: ws.id, sandboxId: sbx.id, name, ...n, createdAt: now, updatedAt: now });
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `preview '${name}', its prefix or its custom domain is already in use`);
      throw e;
    }
    if (!this.needsHostPort(rec.port)) return rec;
    try {
      return await this.assignHostPort(rec);
    } catch (e) {
      await this.store.previews.delete(rec.id);
      this.changed();
      throw e;
    }
  }

  async get(sbx: SandboxRecord, name: string): Promise<PreviewRecord> {
    const p = await this.store.previews.get(sbx.id, name);
    if (!p) throw new HangarError("preview_not_found", `preview '${name}' not found on sandbox '${sbx.name}'`);
    return this.withHostPort(p);
  }

  async list(sbx: SandboxRecord): Promise<PreviewRecord[]> {
    const out: PreviewRecord[] = [];
    for (const p of await this.store.previews.list(sbx.id)) out.push(await this.withHostPort(p));
    return out;
  }

  async update(ws: WorkspaceRecord, sbx: SandboxRecord, name: string, input: PreviewInput): Promise<PreviewRecord> {
    const cur = await this.get(sbx, name);
    const n = this.normalize(ws, sbx, input, cur);
    await this.checkDomain(ws, n.customDomain);
    // a port changed to or from a session's drops or takes a host port
    const hostPort = !this.hostPorts ? undefined : this.needsHostPort(n.port) ? (cur.hostPort ?? (await this.assignHostPort(cur)).hostPort) : null;
    this.changed();
    let rec: PreviewRecord;
    try {
      rec = (await this.store.previews.update(cur.id, { ...n, ...(hostPort !== undefined ? { hostPort } : {}), updatedAt: new Date().toISOString() }))!;
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", "the preview's prefix or custom domain is already in use");
      throw e;
    }
    if (cur.hostPort && !hostPort) this.hostPorts?.close(cur.hostPort);
    return rec;
  }

  async delete(sbx: SandboxRecord, name: string): Promise<PreviewRecord> {
    const cur = await this.get(sbx, name);
    this.changed();
    await this.store.previews.delete(cur.id);
    if (cur.hostPort) this.hostPorts?.close(cur.hostPort);
    return cur;
  }

  // ---- tokens ---------------------------------------------------------------------------------
  async createToken(preview: PreviewRecord, input: TokenInput): Promise<{ record: PreviewTokenRecord; token: string }> {
    const md = input.metadata ?? {};
    const name = md.name === undefined || md.name === null || md.name === "" ? `token-${Date.now()}` : md.name;
    if (typeof name !== "string" || name.length > 100 || !/^[A-Za-z0-9._-]+$/.test(name)) throw new HangarError("validation_failed", "metadata.name: 1 to 100 of letters, digits, '.', '_' and '-'");
    const expiresAt = input.spec?.expiresAt === undefined ? new Date(Date.now() + 3_600_000).toISOString() : isoDate(input.spec.expiresAt, "spec.expiresAt");
    const token = `hpt_${randomToken(24)}`;
    const record: PreviewTokenRecord = { id: `pt_${randomId(16)}`, previewId: preview.id, name, sealed: this.secrets.seal(token), expiresAt, createdAt: new Date().toISOString() };
    // The SDK names tokens "token-<ms>", so parallel creates collide: a taken name gets a suffix.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.previews.insertToken(record, hashPreviewToken(token));
        break;
      } catch (e) {
        if (!(e instanceof StoreConflictError) || attempt >= 5) throw e;
        record.name = `${name}-${randomId(4)}`;
      }
    }
    return { record, token };
  }

  listTokens(preview: PreviewRecord): Promise<PreviewTokenRecord[]> {
    return this.store.previews.listTokens(preview.id);
  }

  async deleteToken(preview: PreviewRecord, name: string): Promise<void> {
    this.changed();
    if (!(await this.store.previews.deleteToken(preview.id, name))) throw new HangarError("token_not_found", `token '${name}' not found on preview '${preview.name}'`);
  }

  revealToken(t: PreviewTokenRecord): string {
    return this.secrets.open(t.sealed);
  }

  /** Whether `token` opens `preview`: issued for it and not expired. */
  async tokenOpens(preview: PreviewRecord, token: string): Promise<boolean> {
    const hash = hashPreviewToken(token);
    const t = await this.tokenCache.getOrLoad(hash, () => this.store.previews.findTokenByHash(hash));
    return !!t && t.previewId === preview.id && Date.parse(t.expiresAt) > Date.now();
  }

  // ---- custom domains -------------------------------------------------------------------------
  async createDomain(ws: WorkspaceRecord, name: unknown): Promise<CustomDomainRecord> {
    if (typeof name !== "string" || !HOSTNAME.test(name.toLowerCase())) throw new HangarError("validation_failed", "metadata.name: must be a domain such as example.com");
    const now = new Date().toISOString();
    try {
      return await this.store.customDomains.insert({
        id: `cd_${randomId(16)}`,
        workspaceId: ws.id,
        name: name.toLowerCase(),
        status: "PENDING",
        verificationToken: `hangar-verification=${randomToken(18)}`,
        createdAt: now,
        updatedAt: now,
        verifiedAt: null,
      });
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `custom domain ${name} is already registered`);
      throw e;
    }
  }

  listDomains(ws: WorkspaceRecord): Promise<CustomDomainRecord[]> {
    return this.store.customDomains.list(ws.id);
  }

  async getDomain(ws: WorkspaceRecord, name: string): Promise<CustomDomainRecord> {
    const d = await this.store.customDomains.get(ws.id, name.toLowerCase());
    if (!d) throw new HangarError("not_found", `custom domain ${name} is not registered in workspace '${ws.name}'`);
    return d;
  }

  /**
   * Verifies a domain: its TXT record `_hangar-challenge.<domain>` must hold the verification token,
   * or an admin attests ownership (`force`, for a single box without public DNS).
   */
  async verifyDomain(ws: WorkspaceRecord, name: string, lookupTxt: (host: string) => Promise<string[][]>, force: boolean): Promise<CustomDomainRecord> {
    const d = await this.getDomain(ws, name);
    if (d.status === "VERIFIED") return d;
    if (!force) {
      const records = await lookupTxt(`_hangar-challenge.${d.name}`).catch(() => [] as string[][]);
      if (!records.some((r) => r.join("") === d.verificationToken)) {
        throw new HangarError("unprocessable", `TXT record _hangar-challenge.${d.name} does not hold ${d.verificationToken} yet`);
      }
    }
    const now = new Date().toISOString();
    return (await this.store.customDomains.update(d.id, { status: "VERIFIED", verifiedAt: now, updatedAt: now }))!;
  }

  async deleteDomain(ws: WorkspaceRecord, name: string): Promise<CustomDomainRecord> {
    const d = await this.getDomain(ws, name);
    await this.store.customDomains.delete(d.id);
    return d;
  }
}
