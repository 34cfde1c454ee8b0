import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pickShell, readImageFile, resolveInRoot, resolveUser } from "./rootfs.js";
import { parseAptSources, debootstrapSummariser } from "./base.js";

describe("reading an untrusted rootfs", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "hangar-rootfs-"));
    await mkdir(join(root, "etc"), { recursive: true });
    await mkdir(join(root, "usr/bin"), { recursive: true });
    await symlink("usr/bin", join(root, "bin"));
    await writeFile(join(root, "usr/bin/bash"), "#!fake\n");
    await chmod(join(root, "usr/bin/bash"), 0o755);
    await writeFile(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nweb:x:33:33:www:/var/www:/usr/sbin/nologin\n");
    await writeFile(join(root, "etc/group"), "root:x:0:\nweb:x:33:\nstaff:x:50:\n");
    // Escapes that must stay inside the root.
    await symlink("/etc/shadow", join(root, "etc/evil-abs"));
    await symlink("../../../../../../etc/hostname", join(root, "etc/evil-rel"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("resolves symlinks inside the root, never to host files", async () => {
    expect(await resolveInRoot(root, "/bin/bash")).toBe(join(root, "usr/bin/bash"));
    expect(await resolveInRoot(root, "/etc/evil-abs")).toBeUndefined(); // root/etc/shadow does not exist
    expect(await resolveInRoot(root, "/etc/evil-rel")).toBe(undefined);
    await writeFile(join(root, "etc/hostname"), "inside\n");
    expect(await readImageFile(root, "/etc/evil-rel")).toBe("inside\n");
    expect(await readImageFile(root, "/../../../etc/passwd")).toContain("web:x:33");
  });

  it("resolves users and groups like Docker", async () => {
    expect(await resolveUser(root, "")).toMatchObject({ uid: 0, gid: 0, home: "/root" });
    expect(await resolveUser(root, "web")).toMatchObject({ uid: 33, gid: 33, home: "/var/www" });
    expect(await resolveUser(root, "web:staff")).toMatchObject({ uid: 33, gid: 50 });
    expect(await resolveUser(root, "33:7")).toMatchObject({ uid: 33, gid: 7 });
    expect(await resolveUser(root, "4242")).toMatchObject({ uid: 4242, gid: 0, home: "/" });
    await expect(resolveUser(root, "ghost")).rejects.toThrow(/not in the image's \/etc\/passwd/);
    await expect(resolveUser(root, "web:ghosts")).rejects.toThrow(/not in the image's \/etc\/group/);
  });

  it("picks a usable shell", async () => {
    expect(await pickShell(root, "/bin/bash")).toBe("/bin/bash");
    expect(await pickShell(root, "/usr/sbin/nologin")).toBe("/bin/bash");
  });
});

describe("base image helpers", () => {
  it("reads apt sources in both formats", () => {
    expect(parseAptSources("deb [arch=amd64] http://m.example/debian/ bookworm main\n# deb http://x y z\n", false)).toEqual([
      { uris: ["http://m.example/debian/"], suites: ["bookworm"] },
    ]);
    const deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://x\nSuites: bookworm\n";
    expect(parseAptSources(deb822, true)).toEqual([{ uris: ["http://deb.debian.org/debian"], suites: ["bookworm", "bookworm-updates"] }]);
  });

  it("summarises debootstrap output", () => {
    const lines: string[] = [];
    const s = debootstrapSummariser((l) => lines.push(l), 60_000);
    for (const p of ["a", "b", "c"]) {
      s(`I: Retrieving ${p} 1.0`);
      s(`I: Validating ${p} 1.0`);
    }
    s("I: Extracting a...");
    s("W: something odd");
    expect(lines).toEqual(["debootstrap: downloading packages…", "debootstrap: extracting packages…", "debootstrap: something odd"]);
  });
});
