import { describe, expect, it } from "vitest";
import { hostCallbackGuard, refusedCallbackAddress } from "./callback-guard.js";

describe("port-monitor callback guard", () => {
  const host = new Set(["192.0.2.10", "2001:db8::10"]);
  it("refuses the host, loopback, link-local and sandbox addresses; allows the rest", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1", "10.219.3.2", "192.0.2.10", "2001:db8::10"]) {
      expect(refusedCallbackAddress(a, "10.219.0.0/16", host), a).not.toBeNull();
    }
    for (const a of ["203.0.113.7", "10.220.0.1", "2001:db8::11", "::ffff:203.0.113.7"]) {
      expect(refusedCallbackAddress(a, "10.219.0.0/16", host), a).toBeNull();
    }
  });

  it("resolves names before deciding", async () => {
    const guard = hostCallbackGuard("10.219.0.0/16");
    await expect(guard(new URL("http://localhost:8585/v0/sandboxes"))).rejects.toMatchObject({ code: "forbidden" });
    await expect(guard(new URL("http://[::1]:1/"))).rejects.toMatchObject({ code: "forbidden" });
    await expect(guard(new URL("http://203.0.113.7/cb"))).resolves.toBeUndefined();
  });
});
