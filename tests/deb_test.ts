/**
 * The Debian package from scripts/build-deb.sh, built around a stand-in for the binary (see
 * tests/_helpers/release.ts), installed on this machine with dpkg, checked, and purged.
 *
 * This test changes the machine: `dpkg -i` installs /usr/bin/edgemux, the unit and
 * /etc/edgemux system-wide and creates the user edgemux. So it needs root, refuses to run where
 * edgemux is already installed, and purges the package (and removes the user, if it made it)
 * however it ends.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { run, type RunResult } from "./_helpers/process.ts";
import { describe, ROOT, script, writeStandIn } from "./_helpers/release.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const UNIT = "/lib/systemd/system/edgemux.service";

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

async function ok0(cmd: string, args: string[]): Promise<RunResult> {
  let r: RunResult;
  // dpkg refuses at once while another dpkg or apt holds its lock (an install elsewhere on the
  // machine); that is a wait, not a failure of the package.
  for (let tries = 0;; tries++) {
    r = await run(cmd, args, { timeoutMs: 120_000, env: { DEBIAN_FRONTEND: "noninteractive" } });
    if (tries === 60 || r.code === 0 || !/lock/.test(r.stderr)) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  equal(r.code, 0, `${cmd} ${args.join(" ")}\n${describe(r)}`);
  return r;
}

/** Owner, group and permission bits of a path, as `stat` names them. */
async function ownership(path: string): Promise<string> {
  return (await ok0("stat", ["-c", "%U %G %a", path])).stdout.trim();
}

Deno.test("the Debian package installs, passes lintian, and removes cleanly", async (t) => {
  const dpkg = requireTool("dpkg", "dpkg");
  const lintian = requireTool("lintian", "lintian");
  const analyze = requireTool("systemd-analyze", "systemd");
  const setpriv = requireTool("setpriv", "util-linux");
  requireTool("adduser", "adduser");
  equal(Deno.uid(), 0, "this test installs a package system-wide: run it as root");
  const installed = await run("dpkg-query", ["-W", "-f=${Status}", "edgemux"]);
  ok(
    installed.code !== 0 || installed.stdout.includes("not-installed"),
    `the package edgemux is installed on this machine (${installed.stdout}); this test would ` +
      "replace and purge it, so it stops here",
  );
  for (const path of ["/usr/bin/edgemux", "/etc/edgemux", UNIT]) {
    ok(!exists(path), `${path} exists; this test would overwrite and delete it, so it stops here`);
  }
  const userExisted = (await run("getent", ["passwd", "edgemux"])).code === 0;

  await using dir = await makeTempDir("edgemux-deb-");
  const standIn = `${dir.path}/edgemux`;
  await writeStandIn(standIn);
  const built = await ok0(script("build-deb.sh"), [standIn, "amd64", dir.path]);
  const deb = `${dir.path}/edgemux_${denoJson.version}_amd64.deb`;
  match(built.stdout, new RegExp(`built ${RegExp.escape(deb)}`));

  await t.step("the package's metadata and contents", async () => {
    const control = (await ok0("dpkg-deb", ["-f", deb])).stdout;
    match(control, /^Package: edgemux$/m);
    match(control, new RegExp(`^Version: ${RegExp.escape(denoJson.version)}$`, "m"));
    match(control, /^Architecture: amd64$/m);
    match(control, /^Depends: .*\badduser\b/m);
    const contents = (await ok0("dpkg-deb", ["-c", deb])).stdout;
    for (
      const [mode, path] of [
        ["-rwxr-xr-x", "./usr/bin/edgemux"],
        ["-rw-r--r--", `.${UNIT}`],
        ["-rw-r-----", "./etc/edgemux/edgemux.yaml"],
        ["drwxr-x---", "./etc/edgemux/certs/"],
        ["-rw-r--r--", "./usr/share/doc/edgemux/copyright"],
      ]
    ) {
      match(
        contents,
        new RegExp(`^${RegExp.escape(mode)} root/root .* ${RegExp.escape(path)}$`, "m"),
      );
    }
    const info = (await ok0("dpkg-deb", ["-I", deb, "conffiles"])).stdout;
    equal(info.trim(), "/etc/edgemux/edgemux.yaml");
  });

  await t.step("lintian reports no errors", async () => {
    const r = await run(lintian, ["--no-tag-display-limit", deb], { timeoutMs: 180_000 });
    const errors = r.stdout.split("\n").filter((line) => line.startsWith("E: "));
    deepEqual(errors, [], describe(r));
    const warnings = r.stdout.split("\n").filter((line) => line.startsWith("W: "));
    console.log(
      `    lintian warnings (expected, see docs/install.md):\n      ${warnings.join("\n      ")}`,
    );
  });

  try {
    await t.step("dpkg -i installs the binary, the unit, the config and the user", async () => {
      await ok0(dpkg, ["-i", deb]);
      const passwd = (await ok0("getent", ["passwd", "edgemux"])).stdout.trim().split(":");
      equal(passwd[5], "/var/lib/edgemux", "home");
      equal(passwd[6], "/usr/sbin/nologin", "shell");
      ok(Number(passwd[2]) < 1000, `edgemux is a system user (uid ${passwd[2]})`);
      await ok0("getent", ["group", "edgemux"]);
      equal(await ownership("/usr/bin/edgemux"), "root root 755");
      equal(await ownership(UNIT), "root root 644");
      equal(await ownership("/etc/edgemux"), "root edgemux 750");
      equal(await ownership("/etc/edgemux/certs"), "root edgemux 750");
      equal(await ownership("/etc/edgemux/edgemux.yaml"), "root edgemux 640");
      equal(
        await Deno.readTextFile("/etc/edgemux/edgemux.yaml"),
        await Deno.readTextFile(`${ROOT}deploy/starter.yaml`),
      );
      equal(
        await Deno.readTextFile(UNIT),
        await Deno.readTextFile(`${ROOT}deploy/edgemux.service`),
      );
      const overrides = await ok0("dpkg-statoverride", ["--list", "/etc/edgemux*"]);
      deepEqual(overrides.stdout.trim().split("\n").sort(), [
        "root edgemux 640 /etc/edgemux/edgemux.yaml",
        "root edgemux 750 /etc/edgemux",
        "root edgemux 750 /etc/edgemux/certs",
      ]);
      const conffiles = await ok0("dpkg-query", ["-W", "-f=${Conffiles}", "edgemux"]);
      match(conffiles.stdout, /^ \/etc\/edgemux\/edgemux\.yaml [0-9a-f]{32}$/m);
    });

    await t.step("the group edgemux may read the config, other users may not", async () => {
      const asService = await run(setpriv, [
        "--reuid=edgemux",
        "--regid=edgemux",
        "--init-groups",
        "cat",
        "/etc/edgemux/edgemux.yaml",
      ]);
      equal(asService.code, 0, describe(asService));
      const asNobody = await run(setpriv, [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "cat",
        "/etc/edgemux/edgemux.yaml",
      ]);
      equal(asNobody.code, 1, describe(asNobody));
      match(asNobody.stderr, /Permission denied/);
    });

    await t.step("systemd-analyze verify accepts the installed unit", async () => {
      const r = await run(analyze, ["verify", UNIT]);
      equal(r.code, 0, describe(r));
      deepEqual((r.stdout + r.stderr).split("\n").filter((l) => l.includes("edgemux")), []);
    });

    await t.step("the installed binary accepts the installed config", async () => {
      const r = await run("/usr/bin/edgemux", ["check", "-c", "/etc/edgemux/edgemux.yaml"], {
        timeoutMs: 60_000,
      });
      equal(r.code, 0, describe(r));
      match(r.stderr, /valid \(2 listeners, 2 routes, 1 backend/);
    });

    await t.step("installing again keeps a changed config and the ownership", async () => {
      const changed = (await Deno.readTextFile("/etc/edgemux/edgemux.yaml")) + "# mine\n";
      await Deno.writeTextFile("/etc/edgemux/edgemux.yaml", changed);
      await ok0(dpkg, ["-i", deb]);
      equal(await Deno.readTextFile("/etc/edgemux/edgemux.yaml"), changed);
      equal(await ownership("/etc/edgemux/edgemux.yaml"), "root edgemux 640");
      const users = (await Deno.readTextFile("/etc/passwd")).split("\n")
        .filter((l) => l.startsWith("edgemux:"));
      equal(users.length, 1);
    });

    await t.step("dpkg -r removes the program and leaves the config", async () => {
      await ok0(dpkg, ["-r", "edgemux"]);
      ok(!exists("/usr/bin/edgemux"), "/usr/bin/edgemux is gone");
      ok(!exists(UNIT), `${UNIT} is gone`);
      match(await Deno.readTextFile("/etc/edgemux/edgemux.yaml"), /# mine\n$/);
      const status = await run("dpkg-query", ["-W", "-f=${Status}", "edgemux"]);
      equal(status.stdout, "deinstall ok config-files");
    });

    await t.step("dpkg --purge removes the config and the ownership overrides", async () => {
      await ok0(dpkg, ["--purge", "edgemux"]);
      ok(!exists("/etc/edgemux"), "/etc/edgemux is gone");
      const overrides = await run("dpkg-statoverride", ["--list", "/etc/edgemux*"]);
      equal(overrides.stdout, "", describe(overrides));
    });
  } finally {
    await run(dpkg, ["--purge", "edgemux"], { timeoutMs: 120_000 });
    if (!userExisted) await run("userdel", ["edgemux"]);
  }
});
