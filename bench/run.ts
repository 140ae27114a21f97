/**
 * `deno task bench`: edgemux side by side with HAProxy 2.6 and Caddy 2.6 (and with no proxy at
 * all), on loopback, with real backends (nginx, iperf3) and real load tools (wrk, ab, h2load,
 * iperf3, curl). Writes a Markdown report to stdout and to bench/results/latest.md, and the raw
 * numbers to bench/results/latest.json. See BENCHMARKS.md.
 *
 *   deno task bench [--quick] [--rounds N] [--only NAME[,NAME…]] [--case TEXT] [--cpu-prof]
 *     [--keep]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { killAllStarted, runCommand } from "./_proc.ts";
import { browserClientHello, NameResolver, NAMES, REPO_ROOT, startBackends } from "./_setup.ts";
import { type Context, type Durations, FULL, QUICK, type Results } from "./_types.ts";
import { SCENARIOS } from "./_scenarios.ts";
import { parseCaddyVersion } from "./_tools.ts";
import { type Environment, renderReport } from "./_report.ts";
import { summarizeProfile } from "./_profile.ts";

const USAGE = `Usage: deno task bench [options]

  --quick            1 round, short runs (about 3 minutes)
  --rounds N         rounds per scenario (default 3; 1 with --quick)
  --only NAMES       run only these scenarios, comma-separated: ${
  SCENARIOS.map((s) => s.name).join(", ")
}
  --case TEXT        run only the cases (or memory kinds) whose name contains TEXT
                     (e.g. h2load, or "edge:" with --only memory)
  --cpu-prof         profile edgemux (V8 sampling profiler) and summarise the hottest functions
  --keep             keep the temp directory (configs, nginx files, profiles)
  -h, --help         this text
`;

const RESULTS_DIR = `${REPO_ROOT}/bench/results`;

function fail(message: string): never {
  console.error(`bench: ${message}`);
  Deno.exit(2);
}

const { values: flags } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        quick: { type: "boolean", default: false },
        rounds: { type: "string" },
        only: { type: "string" },
        case: { type: "string" },
        "cpu-prof": { type: "boolean", default: false },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    fail(`${e instanceof Error ? e.message : e}\n\n${USAGE}`);
  }
})();

if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const rounds = flags.rounds === undefined ? (flags.quick ? 1 : 3) : Number(flags.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
  fail(`--rounds must be a whole number from 1 to 20, not "${flags.rounds}"`);
}
const only = flags.only?.split(",").map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!SCENARIOS.some((s) => s.name === name)) {
    fail(`there is no scenario "${name}"; choose from ${SCENARIOS.map((s) => s.name).join(", ")}`);
  }
}
const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.name));
const durations: Durations = flags.quick ? QUICK : FULL;

const TOOLS = [
  "haproxy",
  "caddy",
  "nginx",
  "wrk",
  "ab",
  "h2load",
  "iperf3",
  "curl",
  "openssl",
  "unshare",
];

async function versionOf(argv: string[], re: RegExp): Promise<string> {
  try {
    const out = await runCommand(argv, { timeoutMs: 10_000 });
    return (out.stdout + out.stderr).match(re)?.[1] ?? "?";
  } catch {
    return "missing";
  }
}

async function environment(): Promise<Omit<Environment, "seconds" | "loadAfter">> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const memKiB = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    mode: flags.quick ? "quick run" : "full run",
    rounds,
    cpu: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "?",
    cores: navigator.hardwareConcurrency,
    memory: `${(memKiB / 1024 / 1024).toFixed(1)} GiB`,
    kernel: Deno.osRelease(),
    versions: {
      deno: Deno.version.deno,
      haproxy: await versionOf(["haproxy", "-v"], /version (\S+)/),
      caddy: await caddyVersion(),
      nginx: await versionOf(["nginx", "-v"], /nginx\/(\S+)/),
      wrk: await versionOf(["wrk", "-v"], /wrk (\S+)/),
      h2load: await versionOf(["h2load", "--version"], /nghttp2\/(\S+)/),
      ab: await versionOf(["ab", "-V"], /Version (\S+)/),
      iperf3: await versionOf(["iperf3", "-v"], /iperf (\S+)/),
      curl: await versionOf(["curl", "--version"], /curl (\S+)/),
      openssl: await versionOf(["openssl", "version"], /OpenSSL (\S+)/),
    },
    loadBefore: loadAverage(),
    command: ["deno task bench", ...Deno.args].join(" "),
  };
}

async function caddyVersion(): Promise<string> {
  try {
    return parseCaddyVersion(
      (await runCommand(["caddy", "version"], { timeoutMs: 10_000 })).stdout,
    );
  } catch {
    return "missing";
  }
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    const out = await runCommand(["sh", "-c", `command -v ${tool}`], { timeoutMs: 5000 });
    if (out.code !== 0) missing.push(tool);
  }
  if (missing.length > 0) {
    fail(
      `missing tools: ${
        missing.join(", ")
      }\n  fix: apt-get install haproxy caddy nginx-light wrk ` +
        "apache2-utils nghttp2-client iperf3 curl openssl util-linux",
    );
  }
}

async function main(): Promise<number> {
  await checkTools();
  const dir = await Deno.makeTempDir({ prefix: "edgemux-bench-" });
  try {
    return await runIn(dir);
  } finally {
    if (flags.keep) console.error(`bench: kept ${dir}`);
    else await Deno.remove(dir, { recursive: true });
  }
}

async function runIn(dir: string): Promise<number> {
  const started = performance.now();
  const env = await environment();
  const log = (message: string) => console.error(message);
  const results: Results = { cases: [], memory: [], micro: [], errors: [], profiles: [] };
  const onSignal = () => {
    killAllStarted();
    if (!flags.keep) Deno.removeSync(dir, { recursive: true });
    console.error("bench: interrupted; every process it started was stopped");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  log(`bench: ${env.mode}, ${rounds} round(s), temp dir ${dir}`);
  const names = new NameResolver(dir);
  await names.init();
  const helloFile = `${dir}/hello-passthrough.bin`;
  await Deno.writeFile(helloFile, await browserClientHello(NAMES.passthrough));
  const edgeHelloFile = `${dir}/hello-edge.bin`;
  await Deno.writeFile(edgeHelloFile, await browserClientHello(NAMES.edge));
  const backends = await startBackends(dir);
  const ctx: Context = {
    dir,
    durations,
    rounds,
    cpuProf: flags["cpu-prof"],
    caseFilter: flags.case,
    backends,
    names,
    helloFile,
    edgeHelloFile,
    results,
    log,
  };
  try {
    for (const s of scenarios) {
      const t0 = performance.now();
      log(`bench: ${s.name}: ${s.title}`);
      try {
        await s.run(ctx);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        results.errors.push({ scenario: s.name, message });
        log(`bench: FAILED ${s.name}: ${message}`);
      }
      log(`bench: ${s.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await backends.stop();
  }

  const profileSummaries = [];
  if (results.profiles.length > 0) {
    const profDir = `${RESULTS_DIR}/profiles`;
    await Deno.mkdir(profDir, { recursive: true });
    await Deno.writeTextFile(`${profDir}/.gitignore`, "# Large; kept out of git.\n*\n");
    for (const p of results.profiles) {
      const file = `${profDir}/${p.file.split("/").pop()}`;
      await Deno.copyFile(p.file, file);
      profileSummaries.push({
        scenario: p.scenario,
        file: file.replace(`${REPO_ROOT}/`, ""),
        top: await summarizeProfile(file, REPO_ROOT),
      });
    }
  }

  const full: Environment = {
    ...env,
    seconds: (performance.now() - started) / 1000,
    loadAfter: loadAverage(),
  };
  const report = renderReport(full, scenarios, results, profileSummaries);
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  await Deno.writeTextFile(`${RESULTS_DIR}/latest.md`, report);
  await Deno.writeTextFile(
    `${RESULTS_DIR}/latest.json`,
    JSON.stringify({ environment: full, durations, results }, null, 2) + "\n",
  );
  console.log(report);
  log(`bench: wrote bench/results/latest.md and latest.json in ${full.seconds.toFixed(0)} s`);
  if (results.errors.length > 0) {
    log(
      `bench: ${results.errors.length} scenario(s) FAILED: ` +
        results.errors.map((e) => e.scenario).join(", "),
    );
    return 1;
  }
  return 0;
}

let code: number;
try {
  code = await main();
} catch (e) {
  killAllStarted();
  console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : e}`);
  code = 1;
}
Deno.exit(code);
