/**
 * The release scripts the workflow (.github/workflows/release.yml) calls, run here:
 * scripts/smoke.sh against a stand-in for the binary, scripts/assemble-release.sh and its
 * SHA256SUMS, scripts/release-notes.sh; the workflow's own shape (pinned actions, least
 * permissions, both architectures, the same scripts); and `deno publish --dry-run`.
 * The compile itself is in compile_test.ts, the Debian package in deb_test.ts and install.sh in
 * install_script_test.ts.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { run } from "./_helpers/process.ts";
import { describe, ROOT, script, writeStandIn } from "./_helpers/release.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  ok(isRecord(value), `${what} is not a map: ${JSON.stringify(value)}`);
  return value;
}

function smokeTools(): void {
  requireTool("curl", "curl");
  requireTool("openssl", "openssl");
  requireTool("python3", "python3");
}

Deno.test("scripts/smoke.sh passes the program under the binary's permissions", async () => {
  smokeTools();
  await using dir = await makeTempDir("edgemux-smoke-");
  const standIn = `${dir.path}/edgemux`;
  await writeStandIn(standIn);
  const r = await run(script("smoke.sh"), [standIn], { timeoutMs: 120_000 });
  equal(r.code, 0, describe(r));
  for (
    const step of [
      "version",
      "check config.example.yaml",
      "a TCP forward",
      "TLS ended at edgemux (edge route)",
      "http -> https redirect",
      "SIGTERM",
      "passed",
    ]
  ) {
    ok(r.stdout.includes(`smoke: ${step}\n`), `no step "${step}":\n${describe(r)}`);
  }
});

Deno.test("scripts/smoke.sh fails a binary that is not what it should be", async (t) => {
  smokeTools();
  await using dir = await makeTempDir("edgemux-smoke-bad-");

  await t.step("a build for another target", async () => {
    const standIn = `${dir.path}/edgemux`;
    await writeStandIn(standIn);
    const r = await run(script("smoke.sh"), [standIn], {
      env: { SMOKE_TARGET: "aarch64-unknown-linux-gnu" },
      timeoutMs: 60_000,
    });
    equal(r.code, 1, describe(r));
    match(r.stderr, /FAILED: version: target is not aarch64-unknown-linux-gnu/);
  });

  await t.step("a program that says it started but carries no traffic", async () => {
    const fake = `${dir.path}/fake`;
    await Deno.writeTextFile(
      fake,
      [
        "#!/bin/sh",
        'case "$1" in',
        '  version|--version) printf "edgemux 0.1.0\\ncommit  dev\\ndeno    2.9.6\\ntarget  dev\\n" ;;',
        "  check) ;;",
        "  run) echo 'edgemux started'; exec sleep 60 ;;",
        "esac",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    await Deno.chmod(fake, 0o755);
    const r = await run(script("smoke.sh"), [fake], { timeoutMs: 60_000 });
    equal(r.code, 1, describe(r));
    match(r.stderr, /FAILED: curl through the forward/);
  });
});

Deno.test("scripts/assemble-release.sh completes a release directory with SHA256SUMS", async () => {
  const sha256sum = requireTool("sha256sum", "coreutils");
  await using dir = await makeTempDir("edgemux-assemble-");
  const release = `${dir.path}/dist`;
  await Deno.mkdir(release);

  const empty = await run(script("assemble-release.sh"), [release]);
  equal(empty.code, 1, `a directory without binaries is refused\n${describe(empty)}`);

  for (const target of TARGETS) {
    await Deno.writeTextFile(`${release}/edgemux-${target}`, `binary for ${target}\n`);
  }
  await Deno.writeTextFile(`${release}/edgemux_${denoJson.version}_amd64.deb`, "deb\n");
  const r = await run(script("assemble-release.sh"), [release]);
  equal(r.code, 0, describe(r));

  const names = [...Deno.readDirSync(release)].map((e) => e.name).sort();
  deepEqual(names, [
    "SHA256SUMS",
    "edgemux-aarch64-unknown-linux-gnu",
    "edgemux-x86_64-unknown-linux-gnu",
    "edgemux.service",
    `edgemux_${denoJson.version}_amd64.deb`,
    "install.sh",
    "starter.yaml",
  ]);
  equal(
    await Deno.readTextFile(`${release}/starter.yaml`),
    await Deno.readTextFile(`${ROOT}deploy/starter.yaml`),
  );
  const sums = await Deno.readTextFile(`${release}/SHA256SUMS`);
  deepEqual(
    sums.trimEnd().split("\n").map((line) => line.split("  ")[1]),
    names.filter((n) => n !== "SHA256SUMS"),
    "SHA256SUMS lists every other file, sorted",
  );
  const checked = await run(sha256sum, ["--check", "--strict", "SHA256SUMS"], { cwd: release });
  equal(checked.code, 0, describe(checked));

  // A changed file no longer checks.
  await Deno.writeTextFile(`${release}/edgemux-x86_64-unknown-linux-gnu`, "something else\n");
  const tampered = await run(sha256sum, ["--check", "--quiet", "SHA256SUMS"], { cwd: release });
  equal(tampered.code, 1, describe(tampered));
  match(tampered.stdout, /edgemux-x86_64-unknown-linux-gnu: FAILED/);
});

Deno.test("scripts/release-notes.sh prints the CHANGELOG.md section of the tag's version", async (t) => {
  const version = denoJson.version;
  await t.step("the tag of deno.json's version gets its section", async () => {
    const r = await run(script("release-notes.sh"), [`v${version}`]);
    equal(r.code, 0, describe(r));
    const changelog = await Deno.readTextFile(`${ROOT}CHANGELOG.md`);
    const start = changelog.indexOf(`\n## ${version}\n`);
    ok(start >= 0, `CHANGELOG.md has no "## ${version}" section`);
    const section = changelog.slice(start).split("\n## ")[1];
    equal(r.stdout.trim(), section.slice(section.indexOf("\n")).trim());
    ok(!r.stdout.includes("## "), "only the one section");
  });

  await t.step("another version's tag is refused", async () => {
    const r = await run(script("release-notes.sh"), ["v99.0.0"]);
    equal(r.code, 1, describe(r));
    match(r.stderr, new RegExp(`does not match deno.json's version ${RegExp.escape(version)}`));
  });

  await t.step("a version without notes is refused", async () => {
    await using dir = await makeTempDir("edgemux-notes-");
    await Deno.mkdir(`${dir.path}/scripts`);
    await Deno.copyFile(script("release-notes.sh"), `${dir.path}/scripts/release-notes.sh`);
    await Deno.copyFile(`${ROOT}deno.json`, `${dir.path}/deno.json`);
    await Deno.writeTextFile(
      `${dir.path}/CHANGELOG.md`,
      `# Changelog\n\n## ${version}\n\n## 0.0.1\n\n- older\n`,
    );
    const r = await run("bash", [`${dir.path}/scripts/release-notes.sh`, `v${version}`]);
    equal(r.code, 1, describe(r));
    match(r.stderr, /CHANGELOG.md has no notes/);
  });
});

Deno.test("the release workflow pins its actions, keeps write access to publishing, and runs the tested scripts", async () => {
  const text = await Deno.readTextFile(`${ROOT}.github/workflows/release.yml`);
  const workflow = record(parseYaml(text), "release.yml");

  // Pinned: a full commit SHA, with the version it stands for beside it.
  const uses = [...text.matchAll(/^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/gm)];
  ok(uses.length >= 4, "the workflow uses actions");
  for (const [, action, comment] of uses) {
    match(action, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${action} is not pinned to a commit SHA`);
    match(comment, /# v\d+\.\d+\.\d+/, `${action} has no "# vX.Y.Z" comment`);
  }

  // Least privilege: read by default, write only where the release is created.
  deepEqual(workflow.permissions, { contents: "read" });
  const jobs = record(workflow.jobs, "jobs");
  const writers = Object.entries(jobs)
    .filter(([, job]) => JSON.stringify(record(job, "job").permissions ?? {}).includes("write"))
    .map(([name]) => name);
  deepEqual(writers, ["publish"]);
  deepEqual(record(jobs.publish, "publish").permissions, { contents: "write" });

  // Both Linux targets, each on a runner of its own architecture.
  const build = record(jobs.build, "build");
  const matrix = record(record(build.strategy, "strategy").matrix, "matrix");
  ok(Array.isArray(matrix.include));
  deepEqual(
    matrix.include.map((m) => [m.target, m["deb-arch"], m.runner]),
    [
      ["x86_64-unknown-linux-gnu", "amd64", "ubuntu-24.04"],
      ["aarch64-unknown-linux-gnu", "arm64", "ubuntu-24.04-arm"],
    ],
  );
  equal(build["runs-on"], "${{ matrix.runner }}");

  // The steps are the scripts tested here, in the order that tests before publishing.
  const steps = (build.steps as unknown[]).map((s) => JSON.stringify(s));
  const at = (needle: string) => steps.findIndex((s) => s.includes(needle));
  for (const needle of ["scripts/build.sh", "scripts/smoke.sh", "scripts/build-deb.sh"]) {
    ok(at(needle) >= 0, `the build job does not run ${needle}`);
  }
  ok(at("scripts/build.sh") < at("scripts/smoke.sh"), "smoke test after compiling");
  ok(at("scripts/smoke.sh") < at("upload-artifact"), "smoke test before the upload");
  ok(text.includes("scripts/release-notes.sh"), "release notes come from the tested script");
  ok(text.includes("scripts/assemble-release.sh"), "SHA256SUMS comes from the tested script");
  for (const [, path] of text.matchAll(/(scripts\/[\w.-]+)/g)) {
    const info = await Deno.stat(`${ROOT}${path}`);
    ok(info.mode !== null && (info.mode & 0o111) !== 0, `${path} is not executable`);
  }

  // The same Deno as CI and the binary's pin.
  const ciRun = await Deno.readTextFile(`${ROOT}.ci/run`);
  const ciDeno = /^DENO_VERSION=(\S+)$/m.exec(ciRun)?.[1];
  equal(record(workflow.env, "env").DENO_VERSION, ciDeno);
  // install.sh knows the same targets.
  const install = await Deno.readTextFile(`${ROOT}install.sh`);
  for (const target of TARGETS) ok(install.includes(target), `install.sh does not know ${target}`);
});

Deno.test("deno publish --dry-run passes and lists only the library's files", async () => {
  const r = await run(Deno.execPath(), ["publish", "--dry-run", "--allow-dirty"], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs: 180_000,
  });
  equal(r.code, 0, describe(r));
  const output = r.stdout + r.stderr;
  match(output, /Dry run complete/);
  // Each file is listed as "   file:///…/path (size)".
  const listed = output.split("\n").map((line) => /file:\/\/(\S+)/.exec(line)?.[1])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.startsWith(ROOT) ? p.slice(ROOT.length) : p);
  ok(listed.length > 0, `no files listed:\n${output}`);
  for (const file of listed) {
    ok(!/(^|\/)tests?\//.test(file), `a test file is published: ${file}`);
    ok(!/_test\.ts$|_bench\.ts$|_testing/.test(file), `a test file is published: ${file}`);
    ok(!file.startsWith("testdata/") && !/\.(key|pem)$/.test(file), `a key is published: ${file}`);
    ok(/^(LICENSE|README\.md|deno\.json|mod\.ts|(config|proxy|routing)\/.*\.ts)$/.test(file), file);
  }
  for (const file of ["LICENSE", "README.md", "mod.ts", "deno.json"]) {
    ok(listed.includes(file), `${file} is not published:\n${listed.join("\n")}`);
  }
  // Complete: every local module of the library's graph is in the package.
  const info = await run(Deno.execPath(), ["info", "--json", "mod.ts"], { cwd: ROOT });
  equal(info.code, 0, describe(info));
  const graph = JSON.parse(info.stdout) as { modules: { specifier: string }[] };
  for (const { specifier } of graph.modules) {
    if (!specifier.startsWith("file://")) continue;
    const file = specifier.slice(`file://${ROOT}`.length);
    ok(listed.includes(file), `${file} is imported by mod.ts but not published`);
  }
  equal(denoJson.license, "MIT");
  match(await Deno.readTextFile(`${ROOT}LICENSE`), /^MIT License\n/);
});
