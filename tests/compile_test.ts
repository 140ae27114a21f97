/**
 * The single binary. `deno compile` cannot fetch its `denort` runtime on these machines
 * (docs/deno-runtime.md §11), so the binary is proved ready in the ways that work offline:
 *
 * - scripts/build.sh, the release build, run with `DENORT_BIN` set to this deno: the `compile`
 *   task of deno.json must accept the module graph, the included files and the permission flags
 *   and bake them in as written, and the build's commit, Deno version and target must be in the
 *   embedded build_info.ts. The file it writes is plain `deno` with that payload appended, so it
 *   cannot run as edgemux: its payload is read instead;
 * - `deno bundle` of the same program, run under the same permission flags, must carry every
 *   kind of connection of config.example.yaml and stop cleanly on SIGTERM.
 *
 * What runs is tested elsewhere: tests/release_test.ts runs scripts/smoke.sh (version, check,
 * run with real connections, SIGTERM) against main.ts under these permissions, and the release
 * workflow runs the same script on each real binary before publishing it.
 *
 * The permission flags are written once, in the compile task; these tests read them from there.
 */

import { LIBC_PATHS } from "../proxy/_deno_internals.ts";
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import {
  type Backend,
  startHttpBackend,
  startTcpBackend,
  startTlsHttpBackend,
} from "./_helpers/backends.ts";
import { certPath, keyPath } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { readAll, writeAll } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { pickFreePort } from "./_helpers/ports.ts";
import { type BackgroundProcess, run, type RunResult, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = Deno.execPath();
// Where systemd's notification socket is; the smoke test points the same grant at its own.
const SYSTEMD_NOTIFY_SOCKET = "/run/systemd/notify";

function describe(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/**
 * The words of the compile task. `$NAME` words (an optional `$EDGEMUX_COMPILE_FLAGS`, for
 * `--target`) expand to nothing when the variable is unset, as in `deno task`.
 */
function compileTaskWords(): string[] {
  const task: string = denoJson.tasks.compile;
  return task.split(/\s+/).filter((word) => word !== "" && !word.startsWith("$"));
}

/** The permission flags of the compile task, in its order. */
function permissionFlags(words: string[]): string[] {
  return words.filter((w) => /^--(allow|deny|ignore)-[a-z]+(=.*)?$/.test(w) || w === "--no-prompt");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  ok(isRecord(value), `${what} is not a map: ${JSON.stringify(value)}`);
  return value;
}

/**
 * The metadata `deno compile` appends to the binary (a JSON object starting `{"argv":`), which
 * holds the baked-in permissions and unstable features. This is Deno 2.9.6's format, which is
 * pinned; a change shows up here as a clear failure rather than a silent pass.
 */
function embeddedMetadata(binary: Uint8Array): Record<string, unknown> {
  const marker = new TextEncoder().encode('{"argv":');
  let start = -1;
  for (let i = binary.indexOf(marker[0]); i >= 0; i = binary.indexOf(marker[0], i + 1)) {
    if (marker.every((byte, j) => binary[i + j] === byte)) {
      start = i;
      break;
    }
  }
  ok(
    start >= 0,
    'no {"argv": metadata in the compiled file: did the format of deno compile change?',
  );
  // Find the brace that closes the object, skipping braces inside strings.
  let depth = 0;
  let inString = false;
  for (let i = start; i < binary.length; i++) {
    const c = binary[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      return record(
        JSON.parse(new TextDecoder().decode(binary.subarray(start, i + 1))),
        "metadata",
      );
    }
  }
  throw new Error("the compile metadata never closes");
}

/** What the metadata should say for one kind of permission, from the task's flags. */
function expectedGrant(flags: string[], kind: string): string[] | null {
  const flag = flags.find((f) => f === `--allow-${kind}` || f.startsWith(`--allow-${kind}=`));
  if (flag === undefined) return null;
  // An unscoped grant is stored as an empty list.
  return flag.includes("=") ? flag.slice(flag.indexOf("=") + 1).split(",") : [];
}

/** The build_info.ts that scripts/build.sh wrote and deno compile embedded, as source text. */
function embeddedBuildInfo(binary: Uint8Array): string {
  const text = new TextDecoder("latin1").decode(binary);
  const start = text.indexOf("// Written by scripts/build.sh");
  ok(start >= 0, "no build_info.ts written by scripts/build.sh among the embedded files");
  const end = text.indexOf("\n};\n", start);
  ok(end > start, "the embedded build_info.ts never closes");
  return text.slice(start, end + 4);
}

Deno.test("scripts/build.sh compiles with the task's graph, files and permissions, and bakes in the build's values", async () => {
  const words = compileTaskWords();
  deepEqual(words.slice(0, 2), ["deno", "compile"], `the compile task is: ${words.join(" ")}`);
  await using dir = await makeTempDir("edgemux-compile-");
  // Not this machine's architecture, so the target demonstrably comes from the command line.
  const target = "aarch64-unknown-linux-gnu";
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const sourceBuildInfo = await Deno.readTextFile(`${ROOT}build_info.ts`);

  // DENORT_BIN replaces the runtime download: the result is plain deno plus our payload, which
  // is enough to prove that everything compile checks was accepted.
  const r = await run(`${ROOT}scripts/build.sh`, [target, dir.path], {
    cwd: ROOT,
    env: { DENORT_BIN: DENO, NO_COLOR: "1", EDGEMUX_COMMIT: commit },
    timeoutMs: 180_000,
  });
  equal(r.code, 0, `scripts/build.sh failed\n${describe(r)}`);
  const output = `${dir.path}/edgemux-${target}`;
  const listing = r.stdout + r.stderr;
  ok(
    listing.includes(`Task compile ${denoJson.tasks.compile}`),
    `not the compile task:\n${listing}`,
  );
  match(listing, /Embedded Files/, describe(r));
  for (
    const file of ["main.ts", "build_info.ts", "config.example.yaml", "yaml/", "@logtape/logtape"]
  ) {
    ok(listing.includes(file), `${file} is not among the embedded files:\n${listing}`);
  }
  // --exclude-unused-npm: a test-only package must not ride along; nor may the tests.
  for (const testOnly of ["fast-check", "ajv"]) {
    ok(!listing.includes(testOnly), `${testOnly} was embedded:\n${listing}`);
  }
  ok(!/_test\.ts/.test(listing), `a test was embedded:\n${listing}`);

  let binary: Uint8Array;
  try {
    binary = await Deno.readFile(output);
  } catch (e) {
    throw new Error(`scripts/build.sh exited 0 but wrote no ${output}: ${e}\n${describe(r)}`);
  }

  // The embedded build_info.ts, evaluated, holds this build's values; the repository's copy,
  // which a run from source uses, is untouched.
  const bakedFile = `${dir.path}/build_info.ts`;
  await Deno.writeTextFile(bakedFile, embeddedBuildInfo(binary));
  const baked = await import(`file://${bakedFile}`);
  deepEqual(baked.BUILD_INFO, { commit, deno: Deno.version.deno, target });
  equal(await Deno.readTextFile(`${ROOT}build_info.ts`), sourceBuildInfo);
  const fromSource = await import("../build_info.ts");
  deepEqual(fromSource.BUILD_INFO, { commit: "dev", deno: "dev", target: "dev" });

  const metadata = embeddedMetadata(binary);
  const grants = record(metadata.permissions, "metadata.permissions");
  const flags = permissionFlags(words);
  for (const kind of ["net", "read", "write", "env", "run", "sys", "ffi"]) {
    deepEqual(grants[`allow_${kind}`], expectedGrant(flags, kind), `allow_${kind} as baked in`);
  }
  equal(grants.prompt, false, "--no-prompt: a service must never wait for a permission prompt");
  const unstable = record(metadata.unstable_config, "metadata.unstable_config");
  ok(
    Array.isArray(unstable.features) && unstable.features.includes("net"),
    `deno.json's "unstable": ["net"] (reusePort, sd_notify) is not baked in: ${
      JSON.stringify(unstable)
    }`,
  );
  equal(metadata.entrypoint_key, "main.ts");
});

Deno.test("the compile task grants only scoped write, env, run and ffi, and docs/install.md lists each grant", async () => {
  const words = compileTaskWords();
  const flags = permissionFlags(words);
  for (const word of ["-A", "--allow-all", "--no-check", "--allow-sys"]) {
    ok(!words.some((w) => w === word || w.startsWith(`${word}=`)), `the compile task has ${word}`);
  }
  // FFI only for the C library, by full path (to set TCP_NODELAY, proxy/_deno_internals.ts).
  const ffi = flags.find((f) => f.startsWith("--allow-ffi="));
  ok(ffi !== undefined, "--allow-ffi must be scoped to the C library's paths");
  deepEqual(ffi.slice("--allow-ffi=".length).split(","), LIBC_PATHS);
  for (const kind of ["write", "env", "run"]) {
    ok(
      flags.some((f) => f.startsWith(`--allow-${kind}=`)),
      `--allow-${kind} must be scoped to a list: ${flags.join(" ")}`,
    );
  }
  const install = await Deno.readTextFile(`${ROOT}docs/install.md`);
  for (const flag of flags) {
    ok(install.includes(flag), `docs/install.md does not explain ${flag}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The bundle smoke test

interface Backends {
  "git-ssh": Backend;
  "git-https": Backend;
  vault: Backend;
  prometheus: Backend;
  grafana: Backend;
}

interface Ports {
  ssh: number;
  http: number;
  https: number;
}

/**
 * config.example.yaml with every address moved to loopback: listeners on `ports`, backends on
 * the test's servers, real test certificates instead of development ones, and the Grafana CA
 * from testdata. Routes stay exactly as the example has them.
 */
async function exampleConfig(backends: Backends, ports: Ports): Promise<string> {
  const example = record(
    parseYaml(await Deno.readTextFile(`${ROOT}config.example.yaml`)),
    "config.example.yaml",
  );
  example.shutdown_timeout = "5s";
  example.certificates = {
    files: [
      { cert: certPath("prometheus"), key: keyPath("prometheus") },
      { cert: certPath("edge-wildcard"), key: keyPath("edge-wildcard") },
    ],
  };
  const exampleBackends = record(example.backends, "backends");
  deepEqual(
    Object.keys(exampleBackends).sort(),
    Object.keys(backends).sort(),
    "config.example.yaml's backends changed: give this test a server for each",
  );
  for (const [name, server] of Object.entries(backends)) {
    const backend = record(exampleBackends[name], `backends.${name}`);
    backend.servers = [`127.0.0.1:${server.port}`];
  }
  const grafanaTls = record(record(exampleBackends.grafana, "grafana").tls, "grafana.tls");
  grafanaTls.ca = certPath("ca");
  const listeners = record(example.listeners, "listeners");
  deepEqual(Object.keys(listeners).sort(), Object.keys(ports).sort(), "the example's listeners");
  for (const [name, port] of Object.entries(ports)) {
    record(listeners[name], `listeners.${name}`).bind = `127.0.0.1:${port}`;
  }
  return stringifyYaml(example);
}

/** Receives sd_notify datagrams the way systemd does, on a unix datagram socket. */
function startNotifyReceiver(path: string) {
  const socket = Deno.listenDatagram({ path, transport: "unixpacket" });
  const messages: string[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const [data] = await socket.receive();
        messages.push(new TextDecoder().decode(data));
      }
    } catch {
      // Closed at the end of the test.
    }
  })();
  return {
    messages,
    async waitFor(line: string, count = 1, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      const seen = () => messages.filter((m) => m.split("\n").includes(line)).length;
      while (seen() < count) {
        if (Date.now() > deadline) {
          throw new Error(`no ${count}× ${line} from sd_notify; got ${JSON.stringify(messages)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      socket.close();
      await done;
    },
  };
}

/** Writes `text` on a fresh connection, half-closes and returns everything read back. */
async function exchange(port: number, text: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, new TextEncoder().encode(text));
  await conn.closeWrite();
  return new TextDecoder().decode(await readAll(conn));
}

Deno.test("the bundle, run with the compile task's permissions, carries every route of config.example.yaml", async (t) => {
  await using dir = await makeTempDir("edgemux-bundle-");
  const bundle = `${dir.path}/edgemux.js`;
  const bundled = await run(
    DENO,
    ["bundle", "--platform", "deno", "-o", bundle, "main.ts"],
    { cwd: ROOT, env: { NO_COLOR: "1" }, timeoutMs: 120_000 },
  );
  equal(bundled.code, 0, `deno bundle failed\n${describe(bundled)}`);

  await using gitSsh = await startTcpBackend("git-ssh", "echo");
  await using gitHttps = await startTlsHttpBackend("git-https", "git");
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using prometheus = await startHttpBackend("prometheus");
  await using grafana = await startTlsHttpBackend("grafana", "backend-internal");
  const backends: Backends = {
    "git-ssh": gitSsh,
    "git-https": gitHttps,
    vault,
    prometheus,
    grafana,
  };

  // The same grants as the binary, except that the notification socket is the test's own.
  const notifyPath = `${dir.path}/notify.sock`;
  const flags = permissionFlags(compileTaskWords());
  ok(
    flags.some((f) => f.startsWith("--allow-write=") && f.includes(SYSTEMD_NOTIFY_SOCKET)),
    `the compile task must let edgemux write to ${SYSTEMD_NOTIFY_SOCKET} (sd_notify)`,
  );
  const testFlags = flags.map((f) =>
    f.startsWith("--allow-write=") ? f.replace(SYSTEMD_NOTIFY_SOCKET, notifyPath) : f
  );
  const notify = startNotifyReceiver(notifyPath);
  const configFile = `${dir.path}/edgemux.yaml`;
  // No deno.json next to the bundle: the unstable API comes from the flag, as documented.
  const denoRun = ["run", "--no-config", ...testFlags, "--unstable-net", bundle];

  let proxy: BackgroundProcess | null = null;
  let ports: Ports = { ssh: 0, http: 0, https: 0 };
  try {
    // The CLI cannot report port-0 binds, so ports are picked first; another process may take
    // one in between, which shows as exit 3 "in use", and then new ports are picked.
    for (let attempt = 1; proxy === null; attempt++) {
      ports = { ssh: pickFreePort(), http: pickFreePort(), https: pickFreePort() };
      await Deno.writeTextFile(configFile, await exampleConfig(backends, ports));
      const started = startProcess(DENO, [...denoRun, "run", "-c", configFile], {
        cwd: dir.path,
        env: { NOTIFY_SOCKET: notifyPath, NO_COLOR: "1" },
      });
      try {
        await started.waitForOutput("edgemux started", 30_000);
        proxy = started;
      } catch (e) {
        const status = await started.stop("SIGKILL");
        if (attempt < 3 && status.code === 3 && /in use/i.test(started.output())) continue;
        throw e;
      }
    }
    const edgemux = proxy;
    await notify.waitFor("READY=1");

    await t.step("edgemux check, under the same permissions, accepts the config", async () => {
      const r = await run(DENO, [...denoRun, "check", "-c", configFile], { cwd: dir.path });
      equal(r.code, 0, describe(r));
      match(r.stderr, /valid \(3 listeners/);
    });

    await t.step("forward: bytes on the ssh listener reach git-ssh and come back", async () => {
      const hello = "SSH-2.0-edgemux-smoke\r\nsome bytes\n";
      equal(await exchange(ports.ssh, hello), hello);
    });

    await t.step("forward: an SSH client on the https listener reaches git-ssh too", async () => {
      const hello = "SSH-2.0-edgemux-smoke-443\r\n";
      equal(await exchange(ports.https, hello), hello);
    });

    await t.step("passthrough: the client sees Vault's own certificate", async () => {
      const seen = await sClient({
        port: ports.https,
        servername: "vault.example.test",
        caFile: certPath("ca"),
      });
      equal(seen.peerCN, "vault.example.test", seen.raw);
      ok(seen.verifyOk, seen.raw);
    });

    await t.step("passthrough: HTTPS to the git server is answered by the git server", async () => {
      const url = `https://git.example.test:${ports.https}/repo.git/info/refs`;
      const res = await curl([
        "--resolve",
        `git.example.test:${ports.https}:127.0.0.1`,
        "--cacert",
        certPath("ca"),
        url,
      ]);
      equal(res.code, 0, res.stderr);
      equal(res.headers["x-backend"], "git-https");
    });

    for (const version of ["1.1", "2"]) {
      await t.step(`edge: HTTP/${version} to Prometheus over edgemux's TLS`, async () => {
        const res = await curl([
          `--http${version}`,
          "--resolve",
          `prometheus.example.test:${ports.https}:127.0.0.1`,
          "--cacert",
          certPath("ca"),
          `https://prometheus.example.test:${ports.https}/graph?g0.expr=up`,
        ]);
        equal(res.code, 0, res.stderr);
        equal(res.status, 200);
        equal(res.httpVersion, version);
        equal(res.headers["x-backend"], "prometheus");
        equal(res.body, "backend prometheus GET /graph?g0.expr=up\n");
      });
    }

    await t.step("reencrypt: Grafana is reached over a new TLS connection", async () => {
      const before = grafana.requests.length;
      const res = await curl([
        "--resolve",
        `grafana.example.test:${ports.https}:127.0.0.1`,
        "--cacert",
        certPath("ca"),
        `https://grafana.example.test:${ports.https}/login`,
      ]);
      equal(res.code, 0, res.stderr);
      equal(res.status, 200);
      equal(res.headers["x-backend"], "grafana");
      equal(grafana.requests.length, before + 1);
      equal(grafana.requests.at(-1)?.headers["x-forwarded-proto"], "https");
    });

    await t.step("redirect: plain HTTP gets 308 to the https listener", async () => {
      const res = await curl([
        "--resolve",
        `git.example.test:${ports.http}:127.0.0.1`,
        `http://git.example.test:${ports.http}/x?y=1`,
      ]);
      equal(res.status, 308);
      equal(res.headers.location, `https://git.example.test:${ports.https}/x?y=1`);
    });

    await t.step("redirect: plain HTTP on the https port gets 308 too", async () => {
      const res = await curl([
        "--resolve",
        `git.example.test:${ports.https}:127.0.0.1`,
        `http://git.example.test:${ports.https}/z`,
      ]);
      equal(res.status, 308);
      equal(res.headers.location, `https://git.example.test:${ports.https}/z`);
    });

    await t.step("SIGHUP reloads and tells systemd RELOADING=1, then READY=1", async () => {
      Deno.kill(edgemux.pid, "SIGHUP");
      await edgemux.waitForOutput("config reloaded", 10_000);
      await notify.waitFor("RELOADING=1");
      await notify.waitFor("READY=1", 2);
    });

    await t.step("SIGTERM stops it with exit code 0 after STOPPING=1", async () => {
      const status = await edgemux.stop("SIGTERM");
      equal(status.code, 0, edgemux.output());
      equal(status.signal, null);
      match(edgemux.output(), /stopped/);
      await notify.waitFor("STOPPING=1");
    });
  } finally {
    await proxy?.stop("SIGKILL");
    await notify.close();
  }
});
