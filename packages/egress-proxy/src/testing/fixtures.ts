// Network configurations the tests share.

/** `spec.network` of the full example in Blaxel's docs (Sandboxes/Proxy.md). */
export const DOCS_EXAMPLE = {
  allowedDomains: ["api.stripe.com", "api.openai.com", "httpbin.org", "*.s3.amazonaws.com"],
  proxy: {
    routing: [
      {
        destinations: ["api.stripe.com"],
        headers: { Authorization: "Bearer {{SECRET:stripe-key}}", "Stripe-Version": "2024-12-18.acacia" },
        body: { api_key: "{{SECRET:stripe-key}}" },
        secrets: { "stripe-key": "sk-live-abc123..." },
      },
      {
        destinations: ["api.openai.com"],
        headers: { Authorization: "Bearer {{SECRET:openai-key}}", "OpenAI-Organization": "org-abc123" },
        secrets: { "openai-key": "sk-proj-xyz789..." },
      },
    ],
    bypass: ["*.s3.amazonaws.com"],
  },
};
