// What a model provider is to the gateway: data, not code paths. Each provider's folder fills one
// of these: where its API lives, how it is authenticated, how the paths clients send map onto it.

export interface ProviderContext {
  /** spec.runtime.model: the model's id at the provider. */
  model: string;
  /** The connection's non-secret config (url, endpoint, apiVersion…). */
  config: Record<string, string>;
}

export interface ProviderDef {
  /** The integration name (IntegrationConnection.spec.integration). */
  integration: string;
  displayName: string;
  /** spec.runtime.type values a model served through this integration may have. */
  modelTypes: string[];
  /** The API's base URL; a connection's config.url (or endpoint) replaces it. Absent: config must give one. */
  baseUrl?: string;
  /** Secret keys the connection must hold (apiKey unless the provider needs no key). */
  secretKeys: string[];
  /** How the key is sent: header name and value prefix. */
  auth: { header: string; prefix: string; secret: string } | null;
  /** Headers added when the client sent none of that name (e.g. anthropic-version). */
  defaultHeaders?: Record<string, string>;
  /** The upstream path (and query) for what the client asked after the model's URL. */
  path(rest: string, ctx: ProviderContext): string;
  /** Whether OpenAI-style streams understand stream_options.include_usage. */
  streamUsage: boolean;
  /** Known model ids (listed by …/connections/{n}/models when the provider is not asked). */
  catalog: string[];
  /** GET path listing the provider's models, asked with the connection's key. */
  modelsPath?: string;
  /** API endpoints as Blaxel's Integration.endpoints describes them. */
  endpoints: Record<string, { method: string; streamKey?: string }>;
}

/** Splits "/path?query" into its parts. */
export function splitQuery(rest: string): [string, string] {
  const i = rest.indexOf("?");
  return i < 0 ? [rest, ""] : [rest.slice(0, i), rest.slice(i)];
}

/**
 * The common mapping for versioned APIs: paths already under `version` go as they are, others
 * get it prepended (the docs' `/models/{m}/chat/completions`), and the bare model URL means `dflt`.
 */
export function versioned(version: string, dflt: string): (rest: string) => string {
  return (rest) => {
    const [p, q] = splitQuery(rest);
    if (p === "/" || p === "") return dflt + q;
    if (p === version || p.startsWith(`${version}/`)) return p + q;
    return version + p + q;
  };
}

/** The endpoints an OpenAI-compatible API serves. */
export const OPENAI_ENDPOINTS: ProviderDef["endpoints"] = {
  "/v1/chat/completions": { method: "POST", streamKey: "stream" },
  "/v1/responses": { method: "POST", streamKey: "stream" },
  "/v1/embeddings": { method: "POST" },
  "/v1/models": { method: "GET" },
};
