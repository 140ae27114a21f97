/**
 * The deployment files: `deploy/edgemux.service` passes `systemd-analyze verify` and agrees with
 * the permissions baked into the binary (deno.json's compile task), and `deploy/edgemux.yaml`
 * passes `edgemux check` once the files it names exist.
 *
 * systemd is not running on the test machines, so the unit is checked, never started.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { certPath } from "./_helpers/certs.ts";
import { run, type RunResult } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = Deno.execPath();
const UNIT_FILE = `${ROOT}deploy/edgemux.service`;
const CONFIG_FILE = `${ROOT}deploy/edgemux.yaml`;
const INSTALLED_BINARY = "/usr/bin/edgemux";

function describe(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** The permission flags of deno.json's compile task (the binary's baked-in permissions). */
function compilePermissions(): string[] {
  const task: string = denoJson.tasks.compile;
  return task.split(/\s+/).filter((w) =>
    /^--(allow|deny|ignore)-[a-z]+(=.*)?$/.test(w) || w === "--no-prompt"
  );
}

/** The scoped values of one `--allow-KIND=a,b` flag of the compile task. */
function grantedPaths(kind: string): string[] {
  const flag = compilePermissions().find((f) => f.startsWith(`--allow-${kind}=`));
  ok(flag !== undefined, `the compile task has no scoped --allow-${kind}=`);
  return flag.slice(flag.indexOf("=") + 1).split(",");
}

Deno.test("deno task start grants only what the compiled binary has (its own .edgemux/ to write aside)", () => {
  const flags = (task: string) =>
    task.split(/\s+/).filter((w) =>
      /^--(allow|deny|ignore)-[a-z]+(=.*)?$/.test(w) || w === "--no-prompt"
    );
  const start = flags(denoJson.tasks.start);
  const compile = compilePermissions();
  for (const flag of start) {
    if (flag.startsWith("--allow-write=")) {
      // The example's development certificate goes to .edgemux/ in the source tree instead of
      // the state directory; nothing else may be written.
      equal(flag, "--allow-write=.edgemux");
      continue;
    }
    ok(compile.includes(flag), `deno task start grants ${flag}, which the binary does not have`);
  }
  ok(start.includes("--no-prompt"), "a missing permission fails at once, as in the binary");
});

/** `Key=value` settings of a unit file by key, in order (a key may repeat). */
function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";") || line.startsWith("[")) {
      continue;
    }
    const eq = line.indexOf("=");
    ok(eq > 0, `not a setting: ${line}`);
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

function one(settings: Map<string, string[]>, key: string): string {
  const values = settings.get(key) ?? [];
  equal(values.length, 1, `${key}= should be set once, found ${JSON.stringify(values)}`);
  return values[0];
}

function seconds(duration: string, what: string): number {
  const m = /^(\d+)s$/.exec(duration);
  ok(m !== null, `${what} is "${duration}"; this test reads whole seconds ("35s")`);
  return Number(m[1]);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  ok(isRecord(value), `${what} is not a map: ${JSON.stringify(value)}`);
  return value;
}

/**
 * A copy of the unit in `dir` whose binary is an executable stand-in, since verify refuses a
 * unit whose ExecStart does not exist and the test machines have no installed edgemux.
 */
async function unitWithStandIn(dir: string, unitText: string): Promise<string> {
  const standIn = `${dir}/edgemux`;
  await Deno.writeTextFile(standIn, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  await Deno.chmod(standIn, 0o755);
  const copy = unitText.replaceAll(INSTALLED_BINARY, standIn);
  ok(copy !== unitText, `the unit does not run ${INSTALLED_BINARY}`);
  const path = `${dir}/edgemux.service`;
  await Deno.writeTextFile(path, copy);
  return path;
}

/** verify exits 0 even for unknown keys; its complaints about our unit are what count. */
function complaintsAbout(r: RunResult, name: string): string[] {
  return (r.stdout + r.stderr).split("\n").filter((line) => line.includes(name));
}

Deno.test("systemd-analyze verify accepts deploy/edgemux.service", async (t) => {
  const analyze = requireTool("systemd-analyze", "systemd");
  const unitText = await Deno.readTextFile(UNIT_FILE);
  await using dir = await makeTempDir("edgemux-unit-");

  await t.step("with an executable at the ExecStart path, verify has nothing to say", async () => {
    const unit = await unitWithStandIn(dir.path, unitText);
    const r = await run(analyze, ["verify", unit]);
    equal(r.code, 0, describe(r));
    deepEqual(complaintsAbout(r, "edgemux"), [], describe(r));
  });

  await t.step("as shipped, its only complaint is the binary not yet installed", async () => {
    const r = await run(analyze, ["verify", UNIT_FILE]);
    const complaints = complaintsAbout(r, "edgemux");
    for (const line of complaints) match(line, new RegExp(`${INSTALLED_BINARY} is not executable`));
  });

  await t.step(
    "verify does catch a misspelt setting (so the check above means something)",
    async () => {
      await using bad = await makeTempDir("edgemux-unit-bad-");
      const unit = await unitWithStandIn(
        bad.path,
        unitText.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
      );
      const r = await run(analyze, ["verify", unit]);
      ok(
        complaintsAbout(r, "edgemux").some((line) => line.includes("Unknown key 'NoNewPrivilege'")),
        describe(r),
      );
    },
  );

  await t.step("systemd-analyze security reports the exposure (informational)", async () => {
    const unit = await unitWithStandIn(dir.path, unitText);
    const r = await run(analyze, ["security", "--offline=yes", unit]);
    const score = /Overall exposure level for edgemux\.service: .*/.exec(r.stdout + r.stderr);
    console.log(
      score
        ? `    ${score[0]}`
        : `    systemd-analyze security --offline gave no score (exit ${r.code}): ${r.stderr}`,
    );
  });
});

Deno.test("deploy/edgemux.service agrees with the binary's permissions and edgemux's signals", async () => {
  const settings = unitSettings(await Deno.readTextFile(UNIT_FILE));

  // The binary may run only its own installed file (workers), write only its state directory
  // and systemd's notification socket.
  const execStart = one(settings, "ExecStart").split(" ");
  equal(execStart[0], INSTALLED_BINARY);
  deepEqual(execStart.slice(1), ["run", "-c", "/etc/edgemux/edgemux.yaml"]);
  deepEqual(grantedPaths("run"), [execStart[0]], "--allow-run is the ExecStart binary");
  const stateDirectory = one(settings, "StateDirectory");
  deepEqual(
    grantedPaths("write").sort(),
    [`/var/lib/${stateDirectory}`, "/run/systemd/notify"].sort(),
    "--allow-write is the StateDirectory and the notification socket",
  );

  equal(one(settings, "Type"), "notify");
  equal(one(settings, "NotifyAccess"), "main", "only the supervisor notifies");
  equal(settings.get("ExecReload")?.at(-1), "/bin/kill -HUP $MAINPID");
  equal(one(settings, "KillMode"), "mixed", "workers get SIGTERM from the supervisor only");
  equal(one(settings, "Restart"), "on-failure");
  equal(one(settings, "User"), "edgemux");
  equal(one(settings, "Group"), "edgemux");
  equal(one(settings, "AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
  equal(one(settings, "CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
  equal(one(settings, "NoNewPrivileges"), "yes");
  equal(one(settings, "ProtectSystem"), "strict");
  equal(one(settings, "ProtectHome"), "yes");
  equal(one(settings, "PrivateTmp"), "yes");
  // "-": a missing /etc/edgemux is edgemux's to report (it names the file), not a namespace
  // failure of systemd's.
  equal(one(settings, "ReadOnlyPaths"), "-/etc/edgemux");
  // Documentation= points at the docs that exist in this repository.
  const docs = settings.get("Documentation") ?? [];
  ok(docs.length >= 2, "Documentation= names the install and config docs");
  for (const url of docs.flatMap((d) => d.split(/\s+/))) {
    const m = /^https:\/\/github\.com\/edgemux\/edgemux\/blob\/main\/(.+)$/.exec(url);
    ok(m, `Documentation=${url} is not a page of the repository`);
    ok((await Deno.stat(`${ROOT}${m[1]}`)).isFile, `${m[1]} does not exist`);
  }
  // V8 compiles to machine code at run time; the setting would stop edgemux from starting.
  equal(one(settings, "MemoryDenyWriteExecute"), "no");
  // /proc/uptime is read for reload notifications.
  equal(settings.get("ProcSubset"), undefined);
  ok(Number(one(settings, "LimitNOFILE")) >= 65536, "LimitNOFILE is raised");

  const config = record(parseYaml(await Deno.readTextFile(CONFIG_FILE)), "deploy/edgemux.yaml");
  const drain = seconds(String(config.shutdown_timeout), "shutdown_timeout");
  const stop = seconds(one(settings, "TimeoutStopSec"), "TimeoutStopSec");
  ok(stop > drain && stop <= drain + 15, `TimeoutStopSec ${stop}s: a little above ${drain}s`);
});

Deno.test("deploy/edgemux.yaml is production-shaped and edgemux check accepts it once its files exist", async () => {
  const openssl = requireTool("openssl", "openssl");
  const text = await Deno.readTextFile(CONFIG_FILE);
  const config = record(parseYaml(text), "deploy/edgemux.yaml");

  const listeners = record(config.listeners, "listeners");
  const binds = Object.values(listeners).map((l) => record(l, "listener").bind).sort();
  deepEqual(binds, ["[::]:22", "[::]:443", "[::]:80"]);
  match(String(record(config.admin, "admin").bind), /^127\.0\.0\.1:\d+$/);
  const certificates = record(config.certificates, "certificates");
  equal(certificates.directory, "/etc/edgemux/certs");
  equal(certificates.development, undefined, "no development certificates in production");

  // Every file it names moves from /etc/edgemux/ to a temporary directory.
  await using dir = await makeTempDir("edgemux-deploy-");
  const copy = text.replaceAll("/etc/edgemux/", `${dir.path}/`);
  ok(!copy.includes("/etc/edgemux"), "every path in the config is below /etc/edgemux/");
  const configFile = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(configFile, copy);

  // One certificate, in certbot's layout, for every name edgemux terminates.
  const names: string[] = [];
  for (const listener of Object.values(listeners)) {
    const routes = record(listener, "listener").routes;
    ok(Array.isArray(routes));
    for (const route of routes.map((r) => record(r, "route"))) {
      if ("edge" in route || "reencrypt" in route) names.push(String(route.sni));
    }
  }
  ok(names.length > 0, "the production config terminates TLS somewhere");
  const live = `${dir.path}/certs/${names[0]}`;
  await Deno.mkdir(live, { recursive: true });
  const made = await run(openssl, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "90",
    "-subj",
    `/CN=${names[0]}`,
    "-addext",
    `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-keyout",
    `${live}/privkey.pem`,
    "-out",
    `${live}/fullchain.pem`,
  ]);
  equal(made.code, 0, describe(made));
  // Backend CAs named in the config.
  const backends = record(record(parseYaml(copy), "copy").backends, "backends");
  for (const [name, backend] of Object.entries(backends)) {
    const tls = record(backend, `backends.${name}`).tls;
    if (isRecord(tls) && typeof tls.ca === "string") {
      await Deno.copyFile(certPath("ca"), tls.ca);
    }
  }

  // Checked under the binary's own permissions.
  const r = await run(
    DENO,
    ["run", ...compilePermissions(), "main.ts", "check", "-c", configFile],
    {
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    },
  );
  equal(r.code, 0, describe(r));
  match(r.stderr, /valid \(3 listeners, \d+ routes, \d+ backends\)/);
  ok(!/warning/.test(r.stderr), `no warnings expected:\n${r.stderr}`);
});

Deno.test("deploy/starter.yaml, the installed default config, fits the unit and is valid as shipped", async () => {
  const settings = unitSettings(await Deno.readTextFile(UNIT_FILE));
  const text = await Deno.readTextFile(`${ROOT}deploy/starter.yaml`);
  const config = record(parseYaml(text), "deploy/starter.yaml");

  // The service may write only below its StateDirectory; the development certificate goes there.
  const state = `/var/lib/${one(settings, "StateDirectory")}/`;
  const certificates = record(config.certificates, "certificates");
  const development = record(certificates.development, "certificates.development");
  ok(
    String(development.directory).startsWith(state),
    `development.directory ${development.directory} is not below ${state}`,
  );
  const drain = seconds(String(config.shutdown_timeout), "shutdown_timeout");
  ok(seconds(one(settings, "TimeoutStopSec"), "TimeoutStopSec") > drain);

  // As installed (an empty certificate directory, nothing else), under the binary's permissions.
  await using dir = await makeTempDir("edgemux-starter-");
  const copy = text.replaceAll("/etc/edgemux/", `${dir.path}/etc/`)
    .replaceAll(state, `${dir.path}/state/`);
  const settingsOnly = copy.split("\n").map((line) => line.replace(/#.*/, "")).join("\n");
  ok(
    !/\/etc\/edgemux|\/var\/lib/.test(settingsOnly),
    "every path is below /etc/edgemux/ or the state directory",
  );
  await Deno.mkdir(`${dir.path}/etc/certs`, { recursive: true });
  const configFile = `${dir.path}/etc/edgemux.yaml`;
  await Deno.writeTextFile(configFile, copy);
  const r = await run(
    DENO,
    ["run", ...compilePermissions(), "main.ts", "check", "-c", configFile],
    { cwd: ROOT, env: { NO_COLOR: "1" } },
  );
  equal(r.code, 0, describe(r));
  match(r.stderr, /valid \(2 listeners, 2 routes, 1 backend, 2 warnings\)/);
  match(r.stderr, /will get a self-signed development certificate: app\.example\.com/);
});
