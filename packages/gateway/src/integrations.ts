// Integrations that MCP functions bind to (spec.integrationConnections), besides the model
// providers: what secrets a connection holds, where Hangar exchanges its refresh token for an access
// token, which API hosts get that token injected, and Hangar's built-in MCP server for it.

export interface McpIntegrationDef {
  integration: string;
  displayName: string;
  /** Secrets every connection of it holds. */
  secretKeys: string[];
  /** OAuth 2.0 token endpoint: the refresh_token grant (RFC 6749 §6) with the connection's CLIENT_ID/CLIENT_SECRET. */
  tokenUrl: string;
  /** The API's base URL: its host gets `Authorization: Bearer <access token>` injected. */
  apiUrl: string;
  /** Built-in MCP server Hangar runs for a function bound to it that has no image of its own. */
  builtin?: string;
  /** Env of the built-in server naming the API's base URL. */
  apiUrlEnv?: string;
}

export const MCP_INTEGRATIONS: ReadonlyMap<string, McpIntegrationDef> = new Map(
  [
    {
      integration: "gmail",
      displayName: "Gmail",
      secretKeys: ["CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN"],
      tokenUrl: "https://oauth2.googleapis.com/token",
      apiUrl: "https://gmail.googleapis.com",
      builtin: "gmail",
      apiUrlEnv: "GMAIL_API_URL",
    },
  ].map((d) => [d.integration, d]),
);

/** Where an integration's endpoints are: overrides by the operator (HANGAR_INTEGRATION_ENDPOINTS), then the connection's spec.config. */
export type EndpointOverrides = Record<string, { tokenUrl?: string; apiUrl?: string }>;

export interface IntegrationEndpoints {
  tokenUrl: string;
  apiUrl: string;
  /** Host names the access token is injected for. */
  apiHosts: string[];
}

export function integrationEndpoints(def: McpIntegrationDef, overrides: EndpointOverrides, config: Record<string, string>): IntegrationEndpoints {
  const o = overrides[def.integration] ?? {};
  const tokenUrl = config.tokenUrl ?? o.tokenUrl ?? def.tokenUrl;
  const apiUrl = (config.apiUrl ?? o.apiUrl ?? def.apiUrl).replace(/\/+$/, "");
  return { tokenUrl, apiUrl, apiHosts: [new URL(apiUrl).hostname] };
}

/** Parses HANGAR_INTEGRATION_ENDPOINTS: `{"gmail":{"tokenUrl":"…","apiUrl":"…"}}`. */
export function parseEndpointOverrides(raw: string | undefined): EndpointOverrides {
  if (!raw?.trim()) return {};
  const v = JSON.parse(raw) as unknown;
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("HANGAR_INTEGRATION_ENDPOINTS: a JSON object {integration: {tokenUrl?, apiUrl?}}");
  const out: EndpointOverrides = {};
  for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
    if (!e || typeof e !== "object") throw new Error(`HANGAR_INTEGRATION_ENDPOINTS.${k}: an object {tokenUrl?, apiUrl?}`);
    const { tokenUrl, apiUrl } = e as Record<string, unknown>;
    for (const [f, u] of [["tokenUrl", tokenUrl], ["apiUrl", apiUrl]] as const) {
      if (u !== undefined && (typeof u !== "string" || !URL.canParse(u))) throw new Error(`HANGAR_INTEGRATION_ENDPOINTS.${k}.${f}: not a URL`);
    }
    out[k] = { ...(typeof tokenUrl === "string" ? { tokenUrl } : {}), ...(typeof apiUrl === "string" ? { apiUrl } : {}) };
  }
  return out;
}
