import { describe, expect, it } from "vitest";
import { HangarError } from "@hangar/common";
import { BASE_REF, isLoopbackRegistry, parseImageRef } from "./refs.js";

describe("image references", () => {
  it("maps every base image alias to one canonical ref", () => {
    for (const r of ["blaxel/base-image:latest", "blaxel/base-image", "hangar/base", "hangar/base:latest", "docker.io/blaxel/base-image:latest", "docker://hangar/base"]) {
      expect(parseImageRef(r), r).toEqual({ kind: "base", canonical: BASE_REF });
    }
    expect(parseImageRef("blaxel/base-image:v2").kind).toBe("registry");
  });

  it("normalises registry names like Docker does", () => {
    expect(parseImageRef("ubuntu")).toMatchObject({ kind: "registry", canonical: "docker.io/library/ubuntu:latest", domain: "docker.io" });
    expect(parseImageRef("ubuntu:22.04").canonical).toBe("docker.io/library/ubuntu:22.04");
    expect(parseImageRef("nope/nope:1").canonical).toBe("docker.io/nope/nope:1");
    expect(parseImageRef("registry.example:5000/team/app:v1.2")).toMatchObject({
      kind: "registry", domain: "registry.example:5000", repository: "team/app", tag: "v1.2",
    });
    expect(parseImageRef("localhost/app").canonical).toBe("localhost/app:latest");
    const digest = "sha256:" + "a".repeat(64);
    expect(parseImageRef(`127.0.0.1:5000/x/y@${digest}`)).toMatchObject({ tag: undefined, digest, canonical: `127.0.0.1:5000/x/y@${digest}` });
  });

  it("parses local layout and archive references", () => {
    expect(parseImageRef("oci:/srv/images/app")).toEqual({ kind: "oci", canonical: "oci:/srv/images/app", path: "/srv/images/app", tag: undefined });
    expect(parseImageRef("oci:/srv/images/app:v1")).toMatchObject({ path: "/srv/images/app", tag: "v1" });
    expect(parseImageRef("oci-archive:/tmp/a.tar")).toMatchObject({ kind: "oci-archive", path: "/tmp/a.tar" });
    expect(parseImageRef("docker-archive:/tmp/a.tar:team/app:v1")).toMatchObject({ kind: "docker-archive", path: "/tmp/a.tar", tag: "team/app:v1" });
  });

  it("rejects garbage, traversal and unknown schemes with invalid_image", () => {
    const bad = [
      "", "   ", "a b", "upper/CASE", "UPPER", "ubuntu:", "ubuntu:bad tag", "ubuntu@sha256:123", "-lead/x", "x//y",
      "../../etc/passwd", "oci:relative/path", "oci:/tmp/../etc/x", "oci:/tmp/./x", "oci:/a//b", "oci:/a/b/",
      "oci:/tmp/x:bad tag", "oci:/tmp/x y", "oci-archive:/tmp/$(id).tar", "docker-archive:/tmp/a.tar:BAD",
      "http://example.com/x", "ftp:/x", "docker:/x", "host:99999/x", "x\u0000y", "a".repeat(2000),
      "registry.example:5000/../x", "registry.example:5000/x/..",
    ];
    for (const r of bad) {
      let err: unknown;
      try {
        parseImageRef(r);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(r)).toBeInstanceOf(HangarError);
      expect((err as HangarError).code).toBe("invalid_image");
      expect((err as HangarError).status).toBe(400);
    }
  });

  it("knows loopback registries", () => {
    expect(isLoopbackRegistry("localhost:5000")).toBe(true);
    expect(isLoopbackRegistry("127.0.0.1:5000")).toBe(true);
    expect(isLoopbackRegistry("[::1]:5000")).toBe(true);
    expect(isLoopbackRegistry("registry.example:5000")).toBe(false);
    expect(isLoopbackRegistry("docker.io")).toBe(false);
  });
});
