/**
 * The `edgemux` command, tested by spawning it: `deno run -A main.ts …` from the repository
 * root, as an operator would run it, reading exit codes, standard error and the log.
 * Long because it covers every command and its errors through the real program, and each case
 * brings the config text it runs on.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { startTcpBackend } from "./_helpers/backends.ts";
import { echoThrough, readAll, writeAll } from "./_helpers/edgemux.ts";
import { echoForwardConfig, type EchoForwardOptions } from "./_helpers/edgemux_cli.ts";
import { type BackgroundProcess, run, type RunResult, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = Deno.execPath();

/** Runs `edgemux ARGS` to completion from the repository root. */
function edgemux(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run(DENO, ["run", "-A", "main.ts", ...args], {
    cwd: ROOT,
    timeoutMs: opts.timeoutMs ?? 20_000,
  });
}

/** Starts `edgemux ARGS` in the background from the repository root. */
function startEdgemuxCli(args: string[]) {
  return startProcess(DENO, ["run", "-A", "main.ts", ...args], { cwd: ROOT });
}

function describe(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** Writes `yaml` to `dir/name` and returns the file's path. */
async function writeConfig(dir: string, name: string, yaml: string): Promise<string> {
  const file = `${dir}/${name}`;
  await Deno.writeTextFile(file, yaml);
  return file;
}

/** A config whose one listener binds `bind` and forwards to a server nobody needs to reach. */
function forwardNowhereConfig(listener: string, bind: string): string {
  return `version: 1
backends:
  b: { servers: ["127.0.0.1:9"] }
listeners:
  ${listener}:
    bind: "${bind}"
    routes:
      - forward: b
`;
}

Deno.test("edgemux check accepts config.example.yaml", async () => {
  const r = await edgemux(["check", "-c", "config.example.yaml"]);
  equal(r.code, 0, describe(r));
  // The example grows with edgemux; what matters is that it stays valid.
  match(r.stderr, /config\.example\.yaml: valid \(\d+ listeners, \d+ routes, \d+ backends/);
  ok(!/: error: /.test(r.stderr), describe(r));
});

Deno.test("edgemux check names the file, line, column, key path and fix of a misspelt key", async (t) => {
  await using dir = await makeTempDir("edgemux-cli-");

  // `route` is the listener's one route; it starts on line 8, at column 7.
  for (
    const c of [
      {
        step: "a key no route has: the fix lists the keys a route takes",
        name: "typo.yaml",
        route: "- name: git\n        backnd: git-ssh",
        // Line 9, column 9: where `backnd` stands.
        at: "9:9",
        key: "backnd",
        fix: /fix: .*"passthrough", .*"forward"/,
      },
      {
        step: "a near miss of a real key: the fix suggests it",
        name: "near.yaml",
        route: "- forwrd: git-ssh",
        at: "8:9",
        key: "forwrd",
        fix: /fix: did you mean "forward"\?/,
      },
    ]
  ) {
    await t.step(c.step, async () => {
      const file = await writeConfig(
        dir.path,
        c.name,
        `version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:10022"] }
listeners:
  ssh:
    bind: "127.0.0.1:0"
    routes:
      ${c.route}
`,
      );
      const r = await edgemux(["check", "-c", file]);
      equal(r.code, 1, describe(r));
      match(
        r.stderr,
        new RegExp(
          `${RegExp.escape(file)}:${c.at}: error: ` +
            `listeners\\.ssh\\.routes\\[0\\]\\.${c.key}: unknown key "${c.key}"`,
        ),
      );
      match(r.stderr, c.fix);
      match(r.stderr, new RegExp(`${RegExp.escape(file)}: invalid \\(\\d+ errors?\\)`));
    });
  }
});

Deno.test("edgemux check merges a directory of files and names both files of a clash", async (t) => {
  await using dir = await makeTempDir("edgemux-cli-");

  await t.step("backends in one file, listeners in another", async () => {
    await Deno.mkdir(`${dir.path}/ok`);
    await Deno.writeTextFile(
      `${dir.path}/ok/10-backends.yaml`,
      `version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:10022"] }
`,
    );
    await Deno.writeTextFile(
      `${dir.path}/ok/20-listeners.yaml`,
      `version: 1
listeners:
  ssh:
    bind: "127.0.0.1:0"
    routes:
      - forward: git-ssh
`,
    );
    const r = await edgemux(["check", "-c", `${dir.path}/ok`]);
    equal(r.code, 0, describe(r));
    match(r.stderr, /: valid \(1 listener, 1 route, 1 backend\)/);
  });

  await t.step("a backend defined in two files", async () => {
    await Deno.mkdir(`${dir.path}/clash`);
    const first = `${dir.path}/clash/a.yaml`;
    const second = `${dir.path}/clash/b.yaml`;
    await Deno.writeTextFile(
      first,
      `version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:10022"] }
listeners:
  ssh: { bind: "127.0.0.1:0", routes: [{ forward: git-ssh }] }
`,
    );
    await Deno.writeTextFile(
      second,
      `version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:10023"] }
`,
    );
    const r = await edgemux(["check", "-c", `${dir.path}/clash`]);
    equal(r.code, 1, describe(r));
    match(
      r.stderr,
      new RegExp(
        `${RegExp.escape(second)}:3:\\d+: error: .*"git-ssh" is already defined at ${
          RegExp.escape(first)
        }:3:`,
      ),
    );
  });
});

Deno.test("edgemux check on a missing path says it does not exist", async () => {
  await using dir = await makeTempDir("edgemux-cli-");
  const missing = `${dir.path}/nope.yaml`;
  const r = await edgemux(["check", "-c", missing]);
  equal(r.code, 1, describe(r));
  match(r.stderr, new RegExp(`${RegExp.escape(missing)}: it does not exist`));
  match(r.stderr, /fix: check the path given with -c/);
});

Deno.test("edgemux version, help, and usage errors", async (t) => {
  for (const command of ["version", "--version"]) {
    await t.step(
      `${command} prints the version from deno.json and the "dev" build values`,
      async () => {
        const r = await edgemux([command]);
        equal(r.code, 0, describe(r));
        equal(
          r.stdout,
          `edgemux ${denoJson.version}\ncommit  dev\ndeno    ${Deno.version.deno}\ntarget  dev\n`,
        );
      },
    );
  }

  for (
    const [args, usage] of [
      [["--help"], /Usage:\n {2}edgemux run/],
      [["run", "--help"], /^Usage: edgemux run /],
      [["check", "--help"], /^Usage: edgemux check /],
    ] as const
  ) {
    await t.step(`${args.join(" ")} prints usage and exits 0`, async () => {
      const r = await edgemux([...args]);
      equal(r.code, 0, describe(r));
      match(r.stdout, usage);
    });
  }

  await t.step("an unknown command exits 2 and names it", async () => {
    const r = await edgemux(["frobnicate"]);
    equal(r.code, 2, describe(r));
    match(r.stderr, /unknown command "frobnicate"/);
    match(r.stderr, /Usage:/);
  });

  for (const command of ["run", "check"]) {
    await t.step(`an unknown flag to ${command} exits 2 and names it`, async () => {
      const r = await edgemux([command, "--frobnicate"]);
      equal(r.code, 2, describe(r));
      match(r.stderr, /--frobnicate/);
      match(r.stderr, new RegExp(`Usage: edgemux ${command}`));
    });
  }

  await t.step("a bad --log-format value exits 2", async () => {
    const r = await edgemux(["run", "-c", "config.example.yaml", "--log-format", "xml"]);
    equal(r.code, 2, describe(r));
    match(r.stderr, /--log-format must be text or json/);
  });
});

Deno.test("edgemux run exits 3 and names the address when it is already in use", async () => {
  await using dir = await makeTempDir("edgemux-cli-");
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  const file = await writeConfig(
    dir.path,
    "busy.yaml",
    forwardNowhereConfig("busy", `127.0.0.1:${port}`),
  );
  const r = await edgemux(["run", "-c", file]);
  equal(r.code, 3, describe(r));
  // The log is logfmt: the message is a quoted value, its own quotes escaped.
  match(r.stderr, new RegExp(`cannot bind 127\\.0\\.0\\.1:${port} for listener \\\\"busy\\\\"`));
  match(r.stderr, /already in use/);
  ok(!r.stderr.includes("edgemux started"), describe(r));
});

Deno.test("edgemux run exits 1 without binding when the config is invalid", async () => {
  await using dir = await makeTempDir("edgemux-cli-");
  const file = await writeConfig(dir.path, "bad.yaml", "version: 1\nlisteners: {}\n");
  const r = await edgemux(["run", "-c", file]);
  equal(r.code, 1, describe(r));
  match(r.stderr, /not starting: .*bad\.yaml is invalid/);
});

/**
 * A world-readable single-file build of main.ts, so an unprivileged user can run it without
 * reading the repository's module graph or root's DENO_DIR.
 */
async function bundleInto(dir: string): Promise<string> {
  const out = `${dir}/edgemux.js`;
  const r = await run(DENO, ["bundle", "--platform", "deno", "-o", out, "main.ts"], {
    cwd: ROOT,
    timeoutMs: 60_000,
  });
  equal(r.code, 0, `deno bundle failed (it needs @esbuild/linux-x64 from npm): ${describe(r)}`);
  return out;
}

Deno.test("edgemux run as an unprivileged user on port 81 names CAP_NET_BIND_SERVICE", async () => {
  const unprivilegedStart = Number(
    (await Deno.readTextFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")).trim(),
  );
  ok(
    unprivilegedStart > 81,
    `net.ipv4.ip_unprivileged_port_start is ${unprivilegedStart}: any user may bind port 81 ` +
      "here, so this test cannot see the permission error",
  );

  await using dir = await makeTempDir("edgemux-cli-");
  // makeTempDir creates 0700 directories; the unprivileged user must read the bundle and
  // config in it.
  await Deno.chmod(dir.path, 0o755);
  const bundle = await bundleInto(dir.path);
  const file = await writeConfig(
    dir.path,
    "low-port.yaml",
    forwardNowhereConfig("web", "127.0.0.1:81"),
  );
  await Deno.chmod(bundle, 0o644);
  await Deno.chmod(file, 0o644);
  // Deno writes its caches into DENO_DIR; give the user one of its own.
  const denoDir = `${dir.path}/deno-dir`;
  await Deno.mkdir(denoDir);

  const asRoot = Deno.uid() === 0;
  const command = asRoot ? requireTool("setpriv", "util-linux") : DENO;
  const prefix = asRoot
    ? ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--", DENO]
    : [];
  if (asRoot) await Deno.chown(denoDir, 65534, 65534);
  const r = await run(command, [...prefix, "run", "-A", bundle, "run", "-c", file], {
    cwd: dir.path,
    env: { DENO_DIR: denoDir, HOME: dir.path, DENO_NO_UPDATE_CHECK: "1" },
  });
  equal(r.code, 3, describe(r));
  match(r.stderr, /cannot bind 127\.0\.0\.1:81 for listener \\"web\\": permission denied/);
  match(r.stderr, /CAP_NET_BIND_SERVICE/);
});

/** The port from the `listening` log line of a listener, text or JSON. */
function listeningPort(output: string, listener: string): number {
  const text = new RegExp(`listening listener=${listener} address=127\\.0\\.0\\.1:(\\d+)`).exec(
    output,
  );
  if (text) return Number(text[1]);
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line);
    if (entry.msg === "listening" && entry.listener === listener) {
      return Number(String(entry.address).split(":").at(-1));
    }
  }
  throw new Error(`no listening line for ${listener} in:\n${output}`);
}

/** `edgemux run ARGS` on an echo forward config, serving. */
interface EchoRun extends AsyncDisposable {
  proc: BackgroundProcess;
  /** The port of the `tcp` listener, which forwards to the echo server. */
  port: number;
}

/**
 * Starts an echo server and `edgemux run -c FILE ARGS` on {@linkcode echoForwardConfig} with
 * `opts`, and waits until it has started. Disposing stops both and removes the file.
 */
async function runEchoForward(
  opts: EchoForwardOptions = {},
  args: string[] = [],
): Promise<EchoRun> {
  const dir = await makeTempDir("edgemux-cli-");
  const echo = await startTcpBackend("echo", "echo");
  const file = await writeConfig(dir.path, "echo.yaml", echoForwardConfig(echo.port, opts));
  const proc = startEdgemuxCli(["run", "-c", file, ...args]);
  const dispose = async () => {
    await proc.stop();
    await echo.close();
    await dir[Symbol.asyncDispose]();
  };
  try {
    await proc.waitForOutput("edgemux started", 15_000);
    return { proc, port: listeningPort(proc.output(), "tcp"), [Symbol.asyncDispose]: dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

Deno.test("edgemux run serves, logs access lines, and stops cleanly on SIGTERM", async () => {
  await using cli = await runEchoForward();
  const { proc, port } = cli;

  equal(await echoThrough(port, "ping through the cli"), "ping through the cli");
  // The access line, whatever its message: the fields say which connection and how it ended.
  await proc.waitForOutput(/ listener=tcp .*backend=echo .*end=client-closed/, 5000);

  const status = await proc.stop("SIGTERM");
  equal(status.code, 0, proc.output());
  equal(status.signal, null);
  match(proc.output(), /stopping signal=SIGTERM/);
  match(proc.output(), /level=info msg=stopped$/m);
});

Deno.test("edgemux run --log-format json writes one JSON object per line", async () => {
  // The config says text; the flag wins.
  await using cli = await runEchoForward({}, ["--log-format", "json"]);
  const { proc, port } = cli;
  equal(await echoThrough(port, "json please"), "json please");
  await proc.waitForOutput(/"end":"client-closed"/, 5000);
  const status = await proc.stop("SIGTERM");
  equal(status.code, 0, proc.output());

  const lines = proc.output().split("\n").filter((line) => line.trim() !== "");
  const entries = lines.map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${line}\nfull output:\n${proc.output()}`);
    }
  });
  const started = entries.find((e) => e.msg === "edgemux started");
  ok(started, proc.output());
  equal(started.level, "info");
  equal(started.version, denoJson.version);
  equal(started.pid, proc.pid);
  ok(!Number.isNaN(Date.parse(String(started.time))), `time ${started.time}`);
  const access = entries.find((e) => e.listener === "tcp" && e.end === "client-closed");
  ok(access, proc.output());
  equal(access.listener, "tcp");
  equal(access.backend, "echo");
  equal(access.up, "json please".length);
  equal(access.down, "json please".length);
  ok(entries.some((e) => e.msg === "stopped"), proc.output());
});

Deno.test("a second SIGTERM ends the process within a second even when the stop is stuck before the drain", async () => {
  // An HTTP health check of a server that accepts and never answers holds the stop for up to
  // its 50 s timeout (probes in flight are awaited); the second signal must not wait for it.
  await using echo = await startTcpBackend("echo", "echo");
  await using mute = await startTcpBackend("mute", "digest");
  await using dir = await makeTempDir("edgemux-cli-");
  const file = await writeConfig(
    dir.path,
    "stuck.yaml",
    `version: 1
log: { level: info, format: text, access: true }
shutdown_timeout: 60s
backends:
  echo: { servers: ["127.0.0.1:${echo.port}"] }
  mute:
    servers: ["127.0.0.1:${mute.port}"]
    health_check: { type: http, interval: 60s, timeout: 50s }
listeners:
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: echo
`,
  );
  const proc = startEdgemuxCli(["run", "-c", file]);
  try {
    await proc.waitForOutput("edgemux started", 15_000);
    using _conn = await openRelayed(listeningPort(proc.output(), "tcp"));
    // The first probe is under way as soon as the process has started.
    Deno.kill(proc.pid, "SIGTERM");
    await proc.waitForOutput(/stopping signal=SIGTERM/, 5000);
    const second = performance.now();
    Deno.kill(proc.pid, "SIGTERM");
    const exited = await Promise.race([
      proc.exited,
      new Promise<null>((r) => setTimeout(() => r(null), 5000)),
    ]);
    const ms = Math.round(performance.now() - second);
    ok(exited !== null, `still running 5 s after the second SIGTERM:\n${proc.output()}`);
    match(proc.output(), /second stop signal/);
    // The stuck stop cannot finish, so the bound of the second signal ended it.
    equal(exited.code, 4, proc.output());
    match(proc.output(), /not stopped within the grace of the second signal; exiting now/);
    ok(ms < 5000, `${ms} ms`);
  } finally {
    await proc.stop();
  }
});

/** Opens a relayed connection and proves it is live; the caller keeps it open. */
async function openRelayed(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, new TextEncoder().encode("x"));
  equal(await conn.read(new Uint8Array(1)), 1);
  return conn;
}

Deno.test("edgemux run drains an open connection for shutdown_timeout, then closes it", async () => {
  await using cli = await runEchoForward({ shutdownTimeout: "1s" });
  const { proc } = cli;
  using conn = await openRelayed(cli.port);

  const signalled = performance.now();
  Deno.kill(proc.pid, "SIGTERM");
  await proc.waitForOutput(/draining connections=1/, 5000);
  const status = await proc.exited;
  const ms = performance.now() - signalled;
  equal(status.code, 0, proc.output());
  ok(ms >= 900, `exited ${ms.toFixed(0)} ms after SIGTERM, before shutdown_timeout`);
  ok(ms < 2500, `exited ${ms.toFixed(0)} ms after SIGTERM, long after shutdown_timeout`);
  match(
    proc.output(),
    /msg="closing connections still open at the shutdown deadline" connections=1/,
  );
  match(proc.output(), / listener=tcp .*end=shutdown/);
  // edgemux closed the client's side too.
  equal((await readAll(conn)).length, 0);
});

Deno.test("a second SIGTERM during the drain closes open connections and exits at once", async () => {
  // A drain far longer than the test may take: only the second signal can end it in time.
  await using cli = await runEchoForward({ shutdownTimeout: "30s" });
  const { proc } = cli;
  using conn = await openRelayed(cli.port);

  Deno.kill(proc.pid, "SIGTERM");
  await proc.waitForOutput(/draining connections=1/, 5000);
  const second = performance.now();
  Deno.kill(proc.pid, "SIGTERM");
  await proc.waitForOutput("second stop signal", 5000);

  // The client's side must be closed promptly, and the process must exit on its own.
  const within = (p: Promise<unknown>) =>
    Promise.race([
      p.then(() => `${(performance.now() - second).toFixed(0)} ms`),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000)),
    ]);
  const [closed, exited] = await Promise.all([within(readAll(conn)), within(proc.exited)]);
  ok(
    closed !== null && exited !== null,
    `3 s after the second SIGTERM: client closed: ${closed ?? "no"}, process exited: ` +
      `${exited ?? "no"}; output:\n${proc.output()}`,
  );
  equal((await proc.exited).code, 0, proc.output());
});

Deno.test("edgemux check needs only --allow-read, and a missing permission is named with its flag", async () => {
  const readOnly = await run(
    DENO,
    ["run", "--no-prompt", "--allow-read", "main.ts", "check", "-c", "config.example.yaml"],
    { cwd: ROOT, timeoutMs: 20_000 },
  );
  equal(readOnly.code, 0, describe(readOnly));
  match(readOnly.stderr, /config\.example\.yaml: valid/);

  const none = await run(
    DENO,
    ["run", "--no-prompt", "main.ts", "check", "-c", "config.example.yaml"],
    { cwd: ROOT, timeoutMs: 20_000 },
  );
  equal(none.code, 1, describe(none));
  match(none.stderr, /Deno did not grant read access to "config\.example\.yaml"/);
  match(none.stderr, /fix: run with --allow-read=config\.example\.yaml \(or --allow-read\)/);
  equal(/YAML|indentation/.test(none.stderr), false, none.stderr);
});

Deno.test("edgemux explain takes the protocol from the listener's routes: http on a plain-HTTP listener", async () => {
  const http = await edgemux([
    "explain",
    "-c",
    "config.example.yaml",
    "--listener",
    "http",
    "--host",
    "git.example.test",
  ]);
  equal(http.code, 0, describe(http));
  match(http.stdout, /protocol http, from the listener's routes/);
  match(http.stdout, /listener http: an http connection\n/);
  match(http.stdout, /answered with a 308 redirect to https/);
  const https = await edgemux([
    "explain",
    "-c",
    "config.example.yaml",
    "--listener",
    "https",
    "--host",
    "prometheus.example.test",
  ]);
  equal(https.code, 0, describe(https));
  match(https.stdout, /a tls connection with server name "prometheus\.example\.test"/);
  // Given explicitly, the protocol is what it says.
  const forced = await edgemux([
    "explain",
    "-c",
    "config.example.yaml",
    "--listener",
    "https",
    "--protocol",
    "http",
  ]);
  equal(forced.code, 0, describe(forced));
  equal(forced.stdout.includes("from the listener's routes"), false);
  match(forced.stdout, /route "plain-http"/);
});

Deno.test("edgemux check --format json writes one JSON verdict for editors and CI", async () => {
  await using dir = await makeTempDir("edgemux-cli-");
  const bad = await writeConfig(
    dir.path,
    "bad.yaml",
    `backends:
  b: { servers: ["127.0.0.1:9"], connect_timeout: 5 }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - { protocol: https, forward: nope }
`,
  );
  const r = await edgemux(["check", "-c", bad, "--format", "json"]);
  equal(r.code, 1, describe(r));
  equal(r.stderr, "", "nothing but the JSON");
  const verdict = JSON.parse(r.stdout);
  equal(verdict.config, bad);
  equal(verdict.valid, false);
  deepEqual(verdict.warnings, []);
  const keys = ["file", "line", "column", "path", "value", "message", "fix"];
  for (const e of verdict.errors) deepEqual(Object.keys(e), keys);
  const byPath = Object.fromEntries(
    verdict.errors.map((e: Record<string, unknown>) => [e.path, e]),
  );
  deepEqual(Object.keys(byPath).sort(), [
    "backends.b.connect_timeout",
    "listeners.l.routes[0].forward",
    "listeners.l.routes[0].protocol",
    "version",
  ]);
  deepEqual(byPath["backends.b.connect_timeout"], {
    file: bad,
    line: 2,
    column: 51,
    path: "backends.b.connect_timeout",
    value: 5,
    message: "5 is not a duration",
    fix: 'write a number with a unit: "250ms", "5s", "2m", "1h" or "1d"',
  });
  equal(byPath["listeners.l.routes[0].forward"].value, "nope");
  equal(byPath["listeners.l.routes[0].protocol"].value, "https");
  equal(byPath.version.value, null, "a missing key has no value");

  const good = await edgemux(["check", "-c", "config.example.yaml", "--format", "json"]);
  equal(good.code, 0, describe(good));
  const valid = JSON.parse(good.stdout);
  equal(valid.valid, true);
  deepEqual(valid.errors, []);
  equal(valid.warnings[0].path, "certificates.development");
  equal(valid.warnings[0].file, null, "a warning about no single place has no position");

  const usage = await edgemux(["check", "-c", "config.example.yaml", "--format", "yaml"]);
  equal(usage.code, 2, describe(usage));
  match(usage.stderr, /--format must be text or json/);
});
