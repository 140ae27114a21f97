/**
 * A first run outside the repository: `edgemux init` in an empty directory, then `check`, then
 * `run` and real requests with curl — trusting the development certificate the way the README
 * and the written config say.
 */

import { equal, match, notEqual, ok } from "node:assert/strict";
import { startHttpBackend } from "./_helpers/backends.ts";
import { curl } from "./_helpers/curl.ts";
import { REPO_ROOT } from "./_helpers/edgemux_cli.ts";
import { pickFreePort } from "./_helpers/ports.ts";
import { run, type RunResult, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

/** `edgemux ARGS` run from `cwd`, outside the repository (so deno.json is named). */
function edgemuxIn(cwd: string, args: string[]): Promise<RunResult> {
  return run(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    `${REPO_ROOT}deno.json`,
    `${REPO_ROOT}main.ts`,
    ...args,
  ], { cwd, timeoutMs: 30_000 });
}

function describe(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

Deno.test("edgemux init in an empty directory, then check, then run: curl gets through with the development certificate", async () => {
  await using app = await startHttpBackend("app");
  await using dir = await makeTempDir("edgemux-init-");
  const [http, https] = [pickFreePort(), pickFreePort()];
  const init = await edgemuxIn(dir.path, [
    "init",
    "site",
    "--ports",
    `${http},${https}`,
    "--backend",
    `127.0.0.1:${app.port}`,
    "--admin",
    "127.0.0.1:0",
  ]);
  equal(init.code, 0, describe(init));
  match(init.stdout, /wrote site\/edgemux\.yaml/);
  const file = `${dir.path}/site/edgemux.yaml`;
  const text = await Deno.readTextFile(file);
  equal(text.includes("testdata"), false, "nothing from the repository");
  equal(text.includes(REPO_ROOT), false, "nothing from the repository");
  // What init says to run next works as printed.
  match(init.stdout, /edgemux check -c site\/edgemux\.yaml/);
  const curlHint = /curl --cacert (\S+) (https:\/\/\S+)/.exec(init.stdout);
  ok(curlHint, init.stdout);
  equal(curlHint[2], `https://app.localhost:${https}/`);

  const check = await edgemuxIn(dir.path, ["check", "-c", "site/edgemux.yaml"]);
  equal(check.code, 0, describe(check));
  match(check.stderr, /valid \(2 listeners, 2 routes, 1 backend, 1 warning\)/);
  match(check.stderr, /self-signed development certificate: app\.localhost/);

  const proc = startProcess(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    `${REPO_ROOT}deno.json`,
    `${REPO_ROOT}main.ts`,
    "run",
    "-c",
    "site/edgemux.yaml",
  ], { cwd: dir.path });
  try {
    await proc.waitForOutput(/msg="edgemux started"/, 30_000);
    // The development certificate is where the config's comment says, and curl trusts it with
    // --cacert; app.localhost resolves to the loopback address by itself (RFC 6761 §6.3).
    const res = await curl(["--cacert", `${dir.path}/${curlHint[1]}`, `${curlHint[2]}hello?x=1`]);
    equal(res.code, 0, `${res.errorMessage}\n${res.stderr}\n${proc.output()}`);
    equal(res.status, 200);
    equal(res.body, "backend app GET /hello?x=1\n");
    equal(app.requests.length, 1);
    // Without --cacert the certificate is not trusted: it is self-signed, as the config says.
    const untrusted = await curl([`https://app.localhost:${https}/`]);
    notEqual(untrusted.code, 0);
    // Plain HTTP is redirected to https on the https listener's port.
    const redirect = await curl(["-H", "Host: app.localhost", `http://127.0.0.1:${http}/a/b?c=d`]);
    equal(redirect.status, 308);
    equal(redirect.headers.location, `https://app.localhost:${https}/a/b?c=d`);
    Deno.kill(proc.pid, "SIGTERM");
    equal((await proc.exited).code, 0, proc.output());
  } finally {
    await proc.stop();
  }
});

Deno.test("edgemux init refuses to overwrite a config without --force, and replaces it with it", async () => {
  await using dir = await makeTempDir("edgemux-init-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(file, "# mine\n");
  const refused = await edgemuxIn(dir.path, ["init"]);
  equal(refused.code, 1, describe(refused));
  match(refused.stderr, /edgemux\.yaml exists already; it was left as it is/);
  match(refused.stderr, /fix: give --force to replace it/);
  equal(await Deno.readTextFile(file), "# mine\n");

  const forced = await edgemuxIn(dir.path, ["init", "--force", "--ports", "2222,8080,8443"]);
  equal(forced.code, 0, describe(forced));
  const text = await Deno.readTextFile(file);
  match(text, /written by `edgemux init --ports 2222,8080,8443`/);
  match(text, /bind: "\[::\]:2222"/);
  const check = await edgemuxIn(dir.path, ["check", "-c", "edgemux.yaml"]);
  equal(check.code, 0, describe(check));
  match(check.stderr, /valid \(3 listeners, 3 routes, 2 backends, 1 warning\)/);
});

Deno.test("edgemux init names what is wrong with --ports and --backend, with exit status 2", async () => {
  await using dir = await makeTempDir("edgemux-init-");
  for (
    const [args, message] of [
      [["--ports", "80"], /--ports takes HTTP,HTTPS or SSH,HTTP,HTTPS/],
      [["--ports", "80,80"], /names a port twice/],
      [["--ports", "80,70000"], /"70000" is not a port number/],
      [["--ports", "8080,8443", "--backend", "127.0.0.1:8080"], /which edgemux itself listens on/],
      [["--name", "Not A Name"], /--name must be a lowercase DNS name/],
    ] as const
  ) {
    const r = await edgemuxIn(dir.path, ["init", ...args]);
    equal(r.code, 2, describe(r));
    match(r.stderr, message);
  }
  equal([...Deno.readDirSync(dir.path)].length, 0, "nothing was written");
});

Deno.test("edgemux init without write permission says so, and how to print the config instead", async () => {
  await using dir = await makeTempDir("edgemux-init-");
  const r = await run(Deno.execPath(), [
    "run",
    "--no-prompt",
    "--allow-read",
    "--allow-env",
    "--allow-write=/nonexistent",
    "--config",
    `${REPO_ROOT}deno.json`,
    `${REPO_ROOT}main.ts`,
    "init",
    "--ports",
    "2222,8080,8443",
  ], { cwd: dir.path, timeoutMs: 30_000 });
  equal(r.code, 1, describe(r));
  match(r.stderr, /cannot write \.\/edgemux\.yaml: Deno did not grant write access/);
  match(r.stderr, /fix: run with --allow-write=/);
  match(
    r.stderr,
    /or print it and redirect: edgemux init --ports 2222,8080,8443 --print > \.\/edgemux\.yaml/,
  );
  // The printed config is the one init would have written.
  const printed = await run(Deno.execPath(), [
    "run",
    "--no-prompt",
    "--config",
    `${REPO_ROOT}deno.json`,
    `${REPO_ROOT}main.ts`,
    "init",
    "--ports",
    "2222,8080,8443",
    "--print",
  ], { cwd: dir.path, timeoutMs: 30_000 });
  equal(printed.code, 0, describe(printed));
  match(
    printed.stdout,
    /^# edgemux starter config, written by `edgemux init --ports 2222,8080,8443`/,
  );
  equal([...Deno.readDirSync(dir.path)].length, 0, "nothing was written");
});
