// A stand-in OAuth 2.0 authorization server for tests: its token endpoint (POST /token, form
// encoded, grant_type=refresh_token) checks the client id and secret and the refresh token and
// issues short-lived access tokens it remembers, so a test can ask whether a bearer was valid.

import { randomBytes } from "node:crypto";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface OAuthStandInOptions {
  clientId: string;
  clientSecret: string;
  refreshTokens: string[];
  /** Lifetime of the access tokens it issues, in seconds (default 3600). */
  expiresIn?: number;
  /** Rotate refresh tokens: each refresh answers a new one and revokes the one used. */
  rotate?: boolean;
}

export class OAuthStandIn {
  readonly url: string;
  /** Every token request, as received (form fields). */
  readonly requests: Record<string, string>[] = [];
  readonly contentTypes: string[] = [];
  private readonly issued = new Map<string, number>();
  private readonly refresh: Set<string>;
  /** Answers with 503 while set (a transient outage). */
  down = false;

  private constructor(
    private readonly server: Server,
    private readonly opts: OAuthStandInOptions,
  ) {
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
    this.refresh = new Set(opts.refreshTokens);
  }

  static async start(opts: OAuthStandInOptions): Promise<OAuthStandIn> {
    let self: OAuthStandIn | null = null;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => self!.handle(req.method ?? "", req.url ?? "", String(req.headers["content-type"] ?? ""), body, (status, json) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json))));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    self = new OAuthStandIn(server, opts);
    return self;
  }

  private handle(method: string, path: string, type: string, body: string, reply: (status: number, json: unknown) => void): void {
    if (method !== "POST" || !path.startsWith("/token")) return reply(404, { error: "not_found" });
    const form = Object.fromEntries(new URLSearchParams(body));
    this.requests.push(form);
    this.contentTypes.push(type);
    if (this.down) return reply(503, { error: "temporarily_unavailable" });
    if (!type.startsWith("application/x-www-form-urlencoded")) return reply(400, { error: "invalid_request", error_description: "form-encoded body expected" });
    if (form.grant_type !== "refresh_token") return reply(400, { error: "unsupported_grant_type" });
    if (form.client_id !== this.opts.clientId || form.client_secret !== this.opts.clientSecret) return reply(401, { error: "invalid_client", error_description: "The OAuth client was not found." });
    if (!form.refresh_token || !this.refresh.has(form.refresh_token)) return reply(400, { error: "invalid_grant", error_description: "Token has been expired or revoked." });
    const token = `ya29.${randomBytes(18).toString("base64url")}`;
    const expiresIn = this.opts.expiresIn ?? 3600;
    this.issued.set(token, Date.now() + expiresIn * 1000);
    let refresh: string | undefined;
    if (this.opts.rotate) {
      refresh = `1//rotated-${randomBytes(12).toString("base64url")}`;
      this.refresh.delete(form.refresh_token);
      this.refresh.add(refresh);
    }
    reply(200, { access_token: token, expires_in: expiresIn, token_type: "Bearer", scope: "https://www.googleapis.com/auth/gmail.send", ...(refresh ? { refresh_token: refresh } : {}) });
  }

  /** True when the token was issued here and has not expired. */
  valid(token: string): boolean {
    const until = this.issued.get(token);
    return until !== undefined && until > Date.now();
  }

  revoke(refreshToken: string): void {
    this.refresh.delete(refreshToken);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
