// Test helpers of the egress proxy: a stand-in internet in a network namespace.
export { FakeInternet, type FakeInternetOptions, type StandInHost, type RecordedRequest } from "./internet.js";
export { DOCS_EXAMPLE } from "./fixtures.js";
