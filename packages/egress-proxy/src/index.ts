export { CertificateAuthority, derToPem, type CaOptions, type LeafCertificate } from "./ca.js";
export { EgressProxy, parseAuthority, type EgressProxyOptions, type EgressStats } from "./proxy.js";
export { EgressPolicy, hasPolicy, compilePattern, patternError, placeholderNames, resolveSecrets, normalizeHost, type NetworkSpec, type RoutingRule, type Decision } from "./policy.js";
export { Upstream, type UpstreamOptions } from "./upstream.js";
export { REDACTED } from "./inject.js";
