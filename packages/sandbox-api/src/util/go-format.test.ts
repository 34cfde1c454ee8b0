import { describe, expect, it } from "vitest";
import { goDuration, goHttpDate, goPermissions, goRfc3339, parseOctalMode } from "./go-format.js";

describe("Go formats", () => {
  it("prints permissions like Go's %o of os.FileMode", () => {
    expect(goPermissions(0o100644)).toBe("644");
    expect(goPermissions(0o100755)).toBe("755");
    expect(goPermissions(0o040755)).toBe("20000000755");
    expect(goPermissions(0o120777)).toBe("1000000777");
    expect(goPermissions(0o041777)).toBe("20004000777"); // sticky /tmp
    expect(goPermissions(0o104755)).toBe("40000755"); // setuid
  });
  it("formats dates as Go's 'Mon, 02 Jan 2006 15:04:05 GMT'", () => {
    expect(goHttpDate(new Date(Date.UTC(2006, 0, 2, 15, 4, 5)))).toBe("Mon, 02 Jan 2006 15:04:05 GMT");
    expect(goHttpDate(Date.UTC(2024, 10, 3, 1, 2, 3))).toBe("Sun, 03 Nov 2024 01:02:03 GMT");
  });
  it("formats RFC 3339 like Go's time JSON (trimmed fraction, Z)", () => {
    expect(goRfc3339(Date.UTC(2024, 0, 2, 3, 4, 5))).toBe("2024-01-02T03:04:05Z");
    expect(goRfc3339(Date.UTC(2024, 0, 2, 3, 4, 5) + 120)).toBe("2024-01-02T03:04:05.12Z");
    expect(goRfc3339(Date.UTC(2024, 0, 2, 3, 4, 5) + 1.5)).toBe("2024-01-02T03:04:05.0015Z");
  });
  it("prints durations like Go's Duration.String", () => {
    expect(goDuration(0)).toBe("0s");
    expect(goDuration(150)).toBe("150ms");
    expect(goDuration(2500)).toBe("2.5s");
    expect(goDuration(5_400_000)).toBe("1h30m0s");
    expect(goDuration(61_000)).toBe("1m1s");
  });
  it("parses octal permission strings", () => {
    expect(parseOctalMode("0644")).toBe(0o644);
    expect(parseOctalMode("755")).toBe(0o755);
    expect(parseOctalMode(undefined)).toBeUndefined();
    expect(() => parseOctalMode("0999")).toThrow();
    expect(() => parseOctalMode("rw-r--r--")).toThrow();
  });
});
