import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import yazl from "yazl";
import { extractZip, type ExtractLimits } from "./archive.js";

interface Item { name: string; data?: string | Buffer; mode?: number; dir?: boolean; compress?: boolean }

/** A zip of the items, built with yazl. */
async function makeZip(items: Item[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const it of items) {
    if (it.dir) zip.addEmptyDirectory(it.name, it.mode === undefined ? {} : { mode: it.mode });
    else zip.addBuffer(Buffer.from(it.data ?? `content of ${it.name}`), it.name, { compress: it.compress ?? true, ...(it.mode === undefined ? {} : { mode: it.mode }) });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Renames an entry yazl would refuse to write: the placeholder (same byte length) is patched in both headers. */
function forgeName(zip: Buffer, placeholder: string, real: string): Buffer {
  const from = Buffer.from(placeholder);
  const to = Buffer.from(real);
  expect(to.length).toBe(from.length);
  let hits = 0;
  for (let i = zip.indexOf(from); i !== -1; i = zip.indexOf(from, i + 1)) {
    to.copy(zip, i);
    hits++;
  }
  expect(hits).toBe(2); // local header and central directory
  return zip;
}

/** Applies `patch` to every local header (offset 0 = signature) and central directory header. */
function patchHeaders(zip: Buffer, patch: (buf: Buffer, at: number, central: boolean) => void): Buffer {
  for (let i = 0; i + 4 <= zip.length; i++) {
    const sig = zip.readUInt32LE(i);
    if (sig === 0x04034b50) patch(zip, i, false);
    else if (sig === 0x02014b50) patch(zip, i, true);
  }
  return zip;
}

let box: string;
let dest: string;
let zipPath: string;

beforeEach(async () => {
  const tmp = await mkdtemp(join(tmpdir(), "hangar-archive-"));
  box = join(tmp, "box");
  dest = join(box, "dest");
  zipPath = join(tmp, "upload.zip");
  await mkdir(dest, { recursive: true });
});

afterEach(async () => {
  await rm(join(box, ".."), { recursive: true, force: true });
});

async function extract(zip: Buffer, limits?: Partial<ExtractLimits>) {
  await writeFile(zipPath, zip);
  return extractZip(zipPath, dest, limits);
}

/** Extraction is refused with `code`, and nothing is left in or beside dest. */
async function expectRefused(zip: Buffer, code: string, detail: RegExp, limits?: Partial<ExtractLimits>): Promise<void> {
  await expect(extract(zip, limits)).rejects.toMatchObject({ name: "HangarError", code, message: expect.stringMatching(detail) });
  expect(await readdir(box)).toEqual(["dest"]);
  expect(await readdir(dest)).toEqual([]);
}

describe("extractZip", () => {
  it("extracts a tree with nested and implicit directories, keeping execute bits", async () => {
    const zip = await makeZip([
      { name: "src/", dir: true },
      { name: "src/lib/", dir: true },
      { name: "src/lib/util.js", data: "export const x = 1;\n" },
      { name: "README.md", data: "# hi\n", compress: false },
      { name: "bin/run", data: "#!/bin/sh\necho hi\n", mode: 0o100755 },
      { name: "deep/a/b/c.txt", data: "deep" },
      { name: "empty.txt", data: "" },
      { name: "./dot/x.txt", data: "dotted" },
    ]);
    const counts = await extract(zip);
    expect(counts).toEqual({ files: 6, dirs: 7, bytes: 20 + 5 + 18 + 4 + 0 + 6 });
    expect(await readFile(join(dest, "src/lib/util.js"), "utf8")).toBe("export const x = 1;\n");
    expect(await readFile(join(dest, "README.md"), "utf8")).toBe("# hi\n");
    expect(await readFile(join(dest, "deep/a/b/c.txt"), "utf8")).toBe("deep");
    expect(await readFile(join(dest, "dot/x.txt"), "utf8")).toBe("dotted");
    expect((await stat(join(dest, "empty.txt"))).size).toBe(0);
    expect((await stat(join(dest, "bin/run"))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dest, "README.md"))).mode & 0o777).toBe(0o644);
    expect((await stat(join(dest, "deep/a/b"))).isDirectory()).toBe(true);
    expect((await readdir(dest)).sort()).toEqual(["README.md", "bin", "deep", "dot", "empty.txt", "src"]);
    expect(await readdir(box)).toEqual(["dest"]);
  });

  it("accepts a directory entry listed after files inside it", async () => {
    const zip = await makeZip([{ name: "a/b.txt" }, { name: "a/", dir: true }]);
    expect(await extract(zip)).toMatchObject({ files: 1, dirs: 1 });
  });

  it("refuses to extract into a directory that is not empty", async () => {
    await writeFile(join(dest, "keep"), "mine");
    await writeFile(zipPath, await makeZip([{ name: "a.txt" }]));
    await expect(extractZip(zipPath, dest)).rejects.toMatchObject({ code: "internal" });
    expect(await readFile(join(dest, "keep"), "utf8")).toBe("mine");
  });

  describe("refuses names that could escape dest", () => {
    const cases: Array<[string, RegExp]> = [
      ["../x", /invalid relative path: \.\.\/x/],
      ["a/../../x", /invalid relative path: a\/\.\.\/\.\.\/x/],
      ["./../x", /invalid relative path/],
      ["/etc/x", /absolute path: \/etc\/x/],
      ["C:/x", /absolute path: C:\/x/],
      ["a\\..\\x", /invalid characters in fileName: a\\\.\.\\x/],
      ["a\\b.txt", /invalid characters/],
      ["a//b", /"a\/\/b" has an empty path segment/],
      ["a/\0b", /"a\/\\u0000b" has a NUL/],
    ];
    for (const [name, detail] of cases) {
      it(JSON.stringify(name), async () => {
        const placeholder = "P".repeat(Buffer.byteLength(name));
        // A legitimate file first, so the refusal also has something to clean up.
        const zip = forgeName(await makeZip([{ name: "ok.txt" }, { name: placeholder, data: "payload", compress: false }]), placeholder, name);
        await expectRefused(zip, "invalid_archive", detail);
      });
    }

    it("an absolute path into the box", async () => {
      const name = join(box, "evil");
      const placeholder = "P".repeat(Buffer.byteLength(name));
      const zip = forgeName(await makeZip([{ name: placeholder, data: "payload" }]), placeholder, name);
      await expectRefused(zip, "invalid_archive", /absolute path/);
    });

    it("a path longer than the limit", async () => {
      const zip = await makeZip([{ name: `${"a".repeat(150)}.txt` }]);
      await expectRefused(zip, "invalid_archive", /longer than 100/, { maxPathLength: 100 });
    });
  });

  describe("refuses entries that are not regular files or directories", () => {
    it("a symbolic link", async () => {
      const zip = await makeZip([{ name: "ok.txt" }, { name: "link", data: "/etc/passwd", mode: 0o120777 }]);
      await expectRefused(zip, "invalid_archive", /"link".*symbolic link/);
    });

    it("a symbolic link directory followed by a file through it", async () => {
      const zip = await makeZip([{ name: "up", data: "..", mode: 0o120777 }, { name: "up/x" }]);
      await expectRefused(zip, "invalid_archive", /symbolic link/);
    });

    for (const [what, mode] of [["character device", 0o020666], ["block device", 0o060660], ["fifo", 0o010644], ["socket", 0o140755]] as const) {
      it(`a ${what}`, async () => {
        const zip = await makeZip([{ name: "ok.txt" }, { name: "dev", data: "", mode }]);
        await expectRefused(zip, "invalid_archive", /"dev".*device, fifo or socket/);
      });
    }

    it("an encrypted entry", async () => {
      const zip = patchHeaders(await makeZip([{ name: "ok.txt" }, { name: "secret.txt", compress: false }]), (buf, at, central) => {
        const flags = at + (central ? 8 : 6);
        buf.writeUInt16LE(buf.readUInt16LE(flags) | 1, flags);
      });
      await expectRefused(zip, "invalid_archive", /encrypted/);
    });

    it("an unsupported compression method", async () => {
      const zip = patchHeaders(await makeZip([{ name: "lzma.bin", compress: false }]), (buf, at, central) => {
        buf.writeUInt16LE(14, at + (central ? 10 : 8));
      });
      await expectRefused(zip, "invalid_archive", /compression method 14/);
    });
  });

  describe("refuses paths that collide", () => {
    it("a duplicate file", async () => {
      const zip = forgeName(await makeZip([{ name: "a/x.txt", data: "one" }, { name: "a/y.txt", data: "two" }]), "a/y.txt", "a/x.txt");
      await expectRefused(zip, "invalid_archive", /repeats/);
    });

    it("a duplicate after normalisation", async () => {
      const zip = await makeZip([{ name: "a/x.txt" }, { name: "./a/x.txt" }]);
      await expectRefused(zip, "invalid_archive", /repeats the path "a\/x.txt"/);
    });

    it("a duplicate directory", async () => {
      const zip = await makeZip([{ name: "a/", dir: true }, { name: "./a/", dir: true }]);
      await expectRefused(zip, "invalid_archive", /repeats/);
    });

    it("a file below a file", async () => {
      const zip = await makeZip([{ name: "a" }, { name: "a/b" }]);
      await expectRefused(zip, "invalid_archive", /"a\/b" is below "a", which is a file/);
    });

    it("a file where a directory was made", async () => {
      const zip = await makeZip([{ name: "a/b" }, { name: "a" }]);
      await expectRefused(zip, "invalid_archive", /file where the archive has a directory/);
    });
  });

  describe("refuses archives too large to extract", () => {
    const zeros = Buffer.alloc(50 * 1024 * 1024);
    let bomb: Buffer;
    beforeEach(async () => {
      bomb ??= await makeZip([{ name: "ok.txt" }, { name: "zeros.bin", data: zeros }]);
    });

    it("builds a bomb that really is one", () => {
      expect(bomb.length).toBeLessThan(200 * 1024);
    });

    it("by compression ratio", async () => {
      await expectRefused(bomb, "archive_too_large", /"zeros.bin" inflates more than 100 times/, { maxRatio: 100 });
    });

    it("by total size", async () => {
      await expectRefused(bomb, "archive_too_large", /past 10485760 bytes/, { maxBytes: 10 * 1024 * 1024 });
    });

    it("by the inflated bytes when the header understates them", async () => {
      const lying = patchHeaders(Buffer.from(bomb), (buf, at, central) => {
        const nameLen = buf.readUInt16LE(at + (central ? 28 : 26));
        const name = buf.subarray(at + (central ? 46 : 30), at + (central ? 46 : 30) + nameLen).toString();
        if (name === "zeros.bin") buf.writeUInt32LE(1000, at + (central ? 24 : 22));
      });
      await expectRefused(lying, "invalid_archive", /"zeros.bin" could not be extracted/);
    });

    it("by entry count", async () => {
      const zip = await makeZip([{ name: "a" }, { name: "b" }, { name: "c" }, { name: "d" }]);
      await expectRefused(zip, "archive_too_large", /4 entries; the limit is 3/, { maxEntries: 3 });
      expect(await extract(zip, { maxEntries: 4 })).toMatchObject({ files: 4 });
    });

    it("but extracts the bomb within generous limits", async () => {
      const counts = await extract(bomb, { maxRatio: 10_000 });
      expect(counts.bytes).toBe(zeros.length + "content of ok.txt".length);
      expect((await stat(join(dest, "zeros.bin"))).size).toBe(zeros.length);
    });
  });

  describe("refuses what is not a zip", () => {
    it("random bytes", async () => {
      await expectRefused(Buffer.from("this is not a zip file, just some text\n".repeat(10)), "invalid_archive", /not a readable zip/);
    });

    it("an empty file", async () => {
      await expectRefused(Buffer.alloc(0), "invalid_archive", /not a readable zip/);
    });

    it("a truncated zip", async () => {
      const zip = await makeZip([{ name: "a.txt", data: "x".repeat(5000) }, { name: "b.txt" }]);
      await expectRefused(zip.subarray(0, Math.floor(zip.length / 2)), "invalid_archive", /not a readable zip/);
    });

    it("a zip whose data is corrupt", async () => {
      const zip = await makeZip([{ name: "ok.txt" }, { name: "a.txt", data: "hello world ".repeat(500) }]);
      const header = zip.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04]), zip.indexOf(Buffer.from("ok.txt")));
      const data = header + 30 + zip.readUInt16LE(header + 26) + zip.readUInt16LE(header + 28); // a.txt's deflate stream
      zip.fill(0xff, data, data + 8);
      await expectRefused(zip, "invalid_archive", /"a.txt" could not be extracted/);
    });
  });
});
