import { describe, expect, it } from "vitest";
import { prepareDockerfile, TRUST_ARGS } from "./dockerfile.js";

describe("prepareDockerfile", () => {
  it("lists the images of FROM and COPY --from after ARG substitution, not stage names or scratch", () => {
    const p = prepareDockerfile(
      ["ARG BASE=hangar/base", "ARG TAG", "FROM ${BASE} AS build", "RUN make", "FROM scratch AS empty", "FROM registry.local:5000/tools:${TAG:-1}", "COPY --from=build /out /out", "COPY --from=0 /x /x", "COPY --from=other/image:2 /y /y", ""].join("\n"),
      { TAG: "7" },
    );
    expect(p.images).toEqual(["hangar/base", "registry.local:5000/tools:7", "other/image:2"]);
  });

  it("drops the SDK's copy of Blaxel's sandbox API and says so", () => {
    const p = prepareDockerfile('FROM python:3.12\nCOPY --from=ghcr.io/blaxel-ai/sandbox:latest /sandbox-api /usr/local/bin/sandbox-api\nENTRYPOINT ["/usr/local/bin/sandbox-api"]\n', {});
    expect(p.images).toEqual(["python:3.12"]);
    expect(p.text).not.toMatch(/^COPY --from=ghcr/m);
    expect(p.text).toContain('ENTRYPOINT ["/usr/local/bin/sandbox-api"]');
    expect(p.notes[0]).toMatch(/Hangar runs its own sandbox API/);
  });

  it("declares each trust ARG on its own line after every FROM, keeping continuation lines intact", () => {
    const p = prepareDockerfile("FROM a AS one\nRUN echo \\\n  two\nFROM b\nRUN true\n", {});
    const lines = p.text.split("\n");
    const after = (i: number) => lines.slice(i + 1, i + 1 + TRUST_ARGS.length);
    expect(after(lines.indexOf("FROM a AS one"))).toEqual(TRUST_ARGS.map((a) => `ARG ${a}`));
    expect(after(lines.indexOf("FROM b"))).toEqual(TRUST_ARGS.map((a) => `ARG ${a}`));
    expect(p.text).toContain("RUN echo \\\n  two");
  });

  it("refuses a Dockerfile without FROM", () => {
    expect(() => prepareDockerfile("RUN true\n", {})).toThrow(/no FROM/);
  });
});
