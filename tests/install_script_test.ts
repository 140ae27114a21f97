/**
 * install.sh against a release directory served over HTTP on loopback (EDGEMUX_RELEASE_URL),
 * installing below a temporary root (EDGEMUX_ROOT) so that this machine's /usr/bin, /etc and
 * user database are left alone. The release directory is made by scripts/assemble-release.sh,
 * as in the release workflow, with a stand-in for the binary (tests/_helpers/release.ts).
 */

import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { run, type RunResult } from "./_helpers/process.ts";
import { describe, ROOT, script, writeStandIn } from "./_helpers/release.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const HERE = (await run("uname", ["-m"])).stdout.trim();
const TARGET = { x86_64: "x86_64-unknown-linux-gnu", aarch64: "aarch64-unknown-linux-gnu" }[HERE];
const OTHER = TARGET === "x86_64-unknown-linux-gnu"
  ? "aarch64-unknown-linux-gnu"
  : "x86_64-unknown-linux-gnu";

/** Serves the files of `dir` (one level) over HTTP on 127.0.0.1; 404 for anything else. */
function serveDirectory(dir: string) {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const name = decodeURIComponent(new URL(req.url).pathname.slice(1));
    requests.push(name);
    if (name.includes("/")) return new Response("not found\n", { status: 404 });
    try {
      return new Response(await Deno.readFile(`${dir}/${name}`));
    } catch {
      return new Response("not found\n", { status: 404 });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A release directory: the stand-in as this machine's binary, something else as the other's. */
async function makeRelease(dir: string): Promise<string> {
  const release = `${dir}/release`;
  await Deno.mkdir(release);
  await writeStandIn(`${release}/edgemux-${TARGET}`);
  await Deno.writeTextFile(`${release}/edgemux-${OTHER}`, "#!/bin/sh\necho wrong binary\n");
  const r = await run(script("assemble-release.sh"), [release]);
  equal(r.code, 0, describe(r));
  return release;
}

/**
 * An empty root with this machine's users and groups (without edgemux), for useradd --prefix.
 * The shadow files start empty: the machine's password hashes are not copied anywhere.
 */
async function makeRoot(path: string): Promise<string> {
  await Deno.mkdir(`${path}/etc`, { recursive: true });
  for (const file of ["passwd", "group"]) {
    const lines = (await Deno.readTextFile(`/etc/${file}`)).split("\n")
      .filter((line) => !line.startsWith("edgemux:"));
    await Deno.writeTextFile(`${path}/etc/${file}`, lines.join("\n"));
  }
  for (const file of ["shadow", "gshadow"]) {
    await Deno.writeTextFile(`${path}/etc/${file}`, "", { mode: 0o600 });
  }
  return path;
}

function install(url: string, root: string, how: "pipe" | "file" = "file"): Promise<RunResult> {
  const env = { EDGEMUX_RELEASE_URL: url, EDGEMUX_ROOT: root };
  return how === "pipe"
    ? run("sh", ["-c", `curl -fsSL "${url}/install.sh" | sh`], { env, timeoutMs: 60_000 })
    : run("sh", [`${ROOT}install.sh`], { env, timeoutMs: 60_000 });
}

async function stat(path: string): Promise<string> {
  const r = await run("stat", ["-c", "%u %g %a", path]);
  equal(r.code, 0, describe(r));
  return r.stdout.trim();
}

function entries(text: string, name: string): string[] {
  return text.split("\n").filter((line) => line.startsWith(`${name}:`));
}

/** Every file below `dir`, relative, sorted. */
function listFiles(dir: string, prefix = ""): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) files.push(`${path}/`, ...listFiles(dir, `${path}/`));
    else files.push(path);
  }
  return files.sort();
}

Deno.test("install.sh installs a checked release, and a second run changes nothing", async (t) => {
  requireTool("curl", "curl");
  requireTool("sha256sum", "coreutils");
  requireTool("useradd", "passwd");
  ok(TARGET !== undefined, `install.sh has no release for this machine (${HERE})`);
  equal(Deno.uid(), 0, "install.sh runs as root (it sets root:edgemux ownership)");
  await using dir = await makeTempDir("edgemux-install-");
  const release = await makeRelease(dir.path);
  await using server = serveDirectory(release);
  const root = await makeRoot(`${dir.path}/root`);

  let gid = "";
  await t.step("curl … | sh: binary for this machine, unit, user and starter config", async () => {
    const r = await install(server.url, root, "pipe");
    equal(r.code, 0, describe(r));
    deepEqual(
      new Set(server.requests),
      new Set(["install.sh", "SHA256SUMS", `edgemux-${TARGET}`, "edgemux.service", "starter.yaml"]),
      "downloads only what it installs",
    );
    // The next two commands.
    match(r.stdout, /^ {2}sudo edgemux check -c \/etc\/edgemux\/edgemux\.yaml/m);
    match(r.stdout, /^ {2}sudo systemctl enable --now edgemux/m);
    match(r.stdout, new RegExp(`Installed edgemux \\S+ for ${TARGET}`));

    deepEqual(
      await Deno.readFile(`${root}/usr/bin/edgemux`),
      await Deno.readFile(`${release}/edgemux-${TARGET}`),
      `the binary is edgemux-${TARGET}`,
    );
    const passwd = entries(await Deno.readTextFile(`${root}/etc/passwd`), "edgemux");
    equal(passwd.length, 1, "the user edgemux was created in the root's passwd");
    const [, , uid, userGid, , home, shell] = passwd[0].split(":");
    ok(Number(uid) < 1000, `a system user (uid ${uid})`);
    equal(home, "/var/lib/edgemux");
    equal(shell, "/usr/sbin/nologin");
    gid = userGid;
    equal(entries(await Deno.readTextFile(`${root}/etc/group`), "edgemux")[0].split(":")[2], gid);

    equal(await stat(`${root}/usr/bin/edgemux`), "0 0 755");
    equal(await stat(`${root}/etc/systemd/system/edgemux.service`), "0 0 644");
    equal(await stat(`${root}/etc/edgemux`), `0 ${gid} 750`);
    equal(await stat(`${root}/etc/edgemux/certs`), `0 ${gid} 750`);
    equal(await stat(`${root}/etc/edgemux/edgemux.yaml`), `0 ${gid} 640`);
    equal(
      await Deno.readTextFile(`${root}/etc/systemd/system/edgemux.service`),
      await Deno.readTextFile(`${ROOT}deploy/edgemux.service`),
    );
    equal(
      await Deno.readTextFile(`${root}/etc/edgemux/edgemux.yaml`),
      await Deno.readTextFile(`${ROOT}deploy/starter.yaml`),
    );
    const version = await run(`${root}/usr/bin/edgemux`, ["version"], { timeoutMs: 30_000 });
    equal(version.code, 0, describe(version));
    match(version.stdout, /^edgemux \d+\.\d+\.\d+\n/);
  });

  await t.step(
    "a second run keeps the config and the user, and leaves the same files",
    async () => {
      const config = `${root}/etc/edgemux/edgemux.yaml`;
      const mine = (await Deno.readTextFile(config)) + "# my change\n";
      await Deno.writeTextFile(config, mine);
      const before = listFiles(root).filter((f) => !f.endsWith("-")); // useradd's backups
      const r = await install(server.url, root);
      equal(r.code, 0, describe(r));
      match(r.stdout, /Kept the existing .*\/etc\/edgemux\/edgemux\.yaml/);
      equal(await Deno.readTextFile(config), mine);
      equal(await stat(config), `0 ${gid} 640`);
      equal(entries(await Deno.readTextFile(`${root}/etc/passwd`), "edgemux").length, 1);
      equal(entries(await Deno.readTextFile(`${root}/etc/group`), "edgemux").length, 1);
      deepEqual(listFiles(root).filter((f) => !f.endsWith("-")), before);
    },
  );

  await t.step("a release whose binary does not match SHA256SUMS is refused", async () => {
    await using tampered = await makeTempDir("edgemux-install-bad-");
    const bad = await makeRelease(tampered.path);
    await Deno.writeTextFile(`${bad}/edgemux-${TARGET}`, "#!/bin/sh\necho replaced\n", {
      append: true,
    });
    await using badServer = serveDirectory(bad);

    // Over the installed root: nothing changes.
    const binaryBefore = await Deno.readFile(`${root}/usr/bin/edgemux`);
    const filesBefore = listFiles(root);
    const over = await install(badServer.url, root);
    equal(over.code, 1, describe(over));
    match(over.stderr, /checksum mismatch: .* nothing was installed/);
    deepEqual(await Deno.readFile(`${root}/usr/bin/edgemux`), binaryBefore);
    deepEqual(listFiles(root), filesBefore);

    // On a fresh root: nothing is created, not even the user.
    const fresh = await makeRoot(`${tampered.path}/root`);
    const passwdBefore = await Deno.readTextFile(`${fresh}/etc/passwd`);
    const r = await install(badServer.url, fresh);
    equal(r.code, 1, describe(r));
    match(r.stderr, /checksum mismatch/);
    deepEqual(listFiles(fresh), ["etc/", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]);
    equal(await Deno.readTextFile(`${fresh}/etc/passwd`), passwdBefore);
  });

  await t.step("a release without this machine's binary is refused", async () => {
    await using partial = await makeTempDir("edgemux-install-partial-");
    const release = await makeRelease(partial.path);
    await Deno.remove(`${release}/edgemux-${TARGET}`);
    await using partialServer = serveDirectory(release);
    const fresh = await makeRoot(`${partial.path}/root`);
    const r = await install(partialServer.url, fresh);
    notEqual(r.code, 0, describe(r));
    match(r.stderr, new RegExp(`could not download .*edgemux-${TARGET}`));
    deepEqual(listFiles(fresh), ["etc/", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]);
  });

  await t.step("it refuses to run without root", async () => {
    const setpriv = requireTool("setpriv", "util-linux");
    const r = await run(setpriv, [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      "sh",
      `${ROOT}install.sh`,
    ], { env: { EDGEMUX_RELEASE_URL: server.url, EDGEMUX_ROOT: `${dir.path}/nope` } });
    equal(r.code, 1, describe(r));
    match(r.stderr, /run it as root/);
  });
});
