/**
 * `deno task fuzz`: hostile inputs at edgemux's parsers, a million by default.
 *
 *   deno task fuzz                                  every target, 1,000,000 inputs in all
 *   deno task fuzz --count 50000 --target config    one target, 50,000 inputs
 *   deno task fuzz --seed 7 --target chunked --index 1234    re-run one input and show it
 *   deno task fuzz --target config --replay fuzz/crashes/config-7-1234.bin
 *
 * Each input is built from (seed, target, index) alone, so a failure reported with its seed and
 * index can be re-run on its own. Every target runs in a worker; the main thread is a watchdog
 * that stops a worker whose current input has not finished within --hang-seconds. Failures are
 * written to fuzz/crashes/<target>-<seed>-<index>.bin and make the run exit with status 1.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Failure, FuzzCase, TargetReport } from "./harness.ts";
import { emptyReport, failureSignature, PropertyError, SLOW_RERUNS } from "./harness.ts";
import { Rng } from "./rng.ts";
import { targetNamed, TARGETS } from "./targets/mod.ts";
import type { WorkerRequest } from "./_worker.ts";

const DEFAULT_COUNT = 1_000_000;
const CRASHES = new URL("./crashes/", import.meta.url);

const HELP = `Usage: deno task fuzz [options]

Options:
  --count N          inputs in all (split over the targets by their share); default ${DEFAULT_COUNT}
  --target NAME      only this target (repeat or comma-separate for several)
  --seed S           seed (an integer); default: a new one, printed
  --index I          with --target: run only input I of that seed and print what happened
  --replay FILE      with --target: run the input saved in FILE
  --no-scaling       skip the 1 KB vs 16 KB cost checks
  --hang-seconds T   stop an input that runs longer than this; default 10
  --list             list the targets
  --help             this text

The response-isolation target drives sockets, not a parser, and runs on its own:
  deno task fuzz:isolation [--seed S] [--requests N]
`;

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

function integer(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} wants a whole number, got "${value}"`);
  return n;
}

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      count: { type: "string" },
      target: { type: "string", multiple: true },
      seed: { type: "string" },
      index: { type: "string" },
      replay: { type: "string" },
      "no-scaling": { type: "boolean", default: false },
      "hang-seconds": { type: "string" },
      list: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  if (values.list) {
    for (const t of TARGETS) console.log(`${t.name.padEnd(16)} ${t.summary}`);
    return;
  }
  const names = (values.target ?? []).flatMap((t) => t.split(",")).filter((t) => t !== "");
  let targets;
  try {
    targets = names.length > 0 ? names.map(targetNamed) : [...TARGETS];
  } catch (e) {
    fail((e as Error).message);
  }
  const seed = integer(values.seed, "seed", Math.floor(Math.random() * 0x7fffffff));

  if (values.index !== undefined || values.replay !== undefined) {
    if (targets.length !== 1) fail("--index and --replay need exactly one --target");
    const target = targets[0];
    target.setup();
    const fcase = values.replay !== undefined
      ? target.replay(Deno.readFileSync(values.replay))
      : target.generate(Rng.forInput(seed, target.name, integer(values.index, "index", 0)));
    Deno.exit(runOne(fcase) ? 0 : 1);
  }

  const total = integer(values.count, "count", DEFAULT_COUNT);
  const shareSum = targets.reduce((n, t) => n + t.share, 0);
  const counts = targets.map((t) => Math.round((total * t.share) / shareSum));
  const hangMs = integer(values["hang-seconds"], "hang-seconds", 10) * 1000;
  console.log(
    `edgemux fuzz: seed ${seed}, ${total} inputs over ${targets.length} target(s)` +
      ` (re-run one: deno task fuzz --seed ${seed} --target NAME --index I)`,
  );
  runAll(targets.map((t, i) => ({ name: t.name, count: counts[i] })), seed, {
    scaling: !values["no-scaling"],
    hangMs,
  }).then((ok) => Deno.exit(ok ? 0 : 1));
}

/** Runs one case in this thread and prints its verdict or its failure. */
function runOne(fcase: FuzzCase): boolean {
  const bytes = fcase.bytes();
  console.log(`input: ${bytes.length} bytes, base64 ${base64(bytes.subarray(0, 4096))}`);
  const t0 = performance.now();
  try {
    const verdict = fcase.run()();
    console.log(`verdict: ${verdict} (${(performance.now() - t0).toFixed(3)} ms)`);
    return true;
  } catch (e) {
    const what = e instanceof PropertyError ? "property failed" : "uncaught exception";
    console.log(`${what} after ${(performance.now() - t0).toFixed(3)} ms:`);
    console.log(e instanceof Error ? e.stack : String(e));
    return false;
  }
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

interface RunAllOptions {
  scaling: boolean;
  hangMs: number;
}

async function runAll(
  plan: { name: string; count: number }[],
  seed: number,
  opts: RunAllOptions,
): Promise<boolean> {
  const began = performance.now();
  const reports: TargetReport[] = [];
  for (const { name, count } of plan) {
    const report = await runInWorkers(name, seed, count, opts);
    reports.push(report);
    printReport(report);
    for (const f of report.failures) printFailure(f, seed);
    for (const [sig, n] of Object.entries(report.failureCounts)) {
      console.log(`  ${n} input(s) failed with: ${sig}`);
    }
  }
  const inputs = reports.reduce((n, r) => n + r.inputs, 0);
  const seconds = (performance.now() - began) / 1000;
  const failures = reports.reduce(
    (n, r) => n + Object.values(r.failureCounts).reduce((a, b) => a + b, 0),
    0,
  );
  const distinct = reports.reduce((n, r) => n + Object.keys(r.failureCounts).length, 0);
  console.log(
    `\n${inputs} inputs in ${seconds.toFixed(1)} s (${
      Math.round(inputs / seconds)
    }/s overall, scaling checks included): ${
      failures === 0
        ? "no failures"
        : `${failures} failing input(s), ${distinct} distinct failure(s)`
    }`,
  );
  return failures === 0;
}

/**
 * Runs a target in a worker, restarting after the input that hung, until `count` inputs are
 * done. Returns the reports of every worker merged into one.
 */
async function runInWorkers(
  name: string,
  seed: number,
  count: number,
  opts: RunAllOptions,
): Promise<TargetReport> {
  let merged: TargetReport | null = null;
  let start = 0;
  while (true) {
    const outcome = await runWorker({
      target: name,
      seed,
      count: count - start,
      start,
      scaling: opts.scaling,
      progress: new SharedArrayBuffer(8),
    }, opts.hangMs);
    if ("report" in outcome) return merge(merged, outcome.report);
    // A hang: keep what is known, record the input, go on after it.
    const { index } = outcome;
    const target = targetNamed(name);
    const done = index < 0 ? count - start : index - start + 1;
    const failure: Failure = {
      target: name,
      index,
      kind: "hang",
      message: index < 0
        ? `scaling family ${-index} ran for more than ${opts.hangMs / 1000} s`
        : `input ${index} ran for more than ${opts.hangMs / 1000} s and was stopped`,
      stack: "",
      bytes: index < 0 ? new Uint8Array(0) : (() => {
        target.setup();
        return target.generate(Rng.forInput(seed, name, index)).bytes();
      })(),
    };
    const partial: TargetReport = {
      ...emptyReport(name, seed, start),
      inputs: done,
      failures: [failure],
      failureCounts: { [failureSignature(failure)]: 1 },
    };
    merged = merge(merged, partial);
    if (index < 0) return merged;
    start = index + 1; // a worker with nothing left to run still does the scaling checks
  }
}

function merge(a: TargetReport | null, b: TargetReport): TargetReport {
  if (a === null) return b;
  const verdicts = { ...a.verdicts };
  for (const [k, v] of Object.entries(b.verdicts)) verdicts[k] = (verdicts[k] ?? 0) + v;
  const slowerB = b.slowestMs > a.slowestMs;
  const failureCounts = { ...a.failureCounts };
  for (const [k, v] of Object.entries(b.failureCounts)) {
    failureCounts[k] = (failureCounts[k] ?? 0) + v;
  }
  return {
    ...a,
    inputs: a.inputs + b.inputs,
    seconds: a.seconds + b.seconds,
    runSeconds: a.runSeconds + b.runSeconds,
    slowestMs: slowerB ? b.slowestMs : a.slowestMs,
    slowestIndex: slowerB ? b.slowestIndex : a.slowestIndex,
    slowestRawMs: Math.max(a.slowestRawMs, b.slowestRawMs),
    verdicts,
    failures: [...a.failures, ...b.failures],
    failureCounts,
    scaling: [...a.scaling, ...b.scaling],
  };
}

type WorkerOutcome = { report: TargetReport } | { index: number };

function runWorker(req: WorkerRequest, hangMs: number): Promise<WorkerOutcome> {
  const worker = new Worker(new URL("./_worker.ts", import.meta.url), { type: "module" });
  const progress = new Int32Array(req.progress);
  progress[0] = req.start;
  return new Promise((resolve, reject) => {
    let lastIndex = -2;
    let since = performance.now();
    const timer = setInterval(() => {
      const index = Atomics.load(progress, 0);
      const running = Atomics.load(progress, 1) === 1;
      if (!running || index !== lastIndex) {
        lastIndex = index;
        since = performance.now();
        return;
      }
      if (performance.now() - since > hangMs) {
        clearInterval(timer);
        worker.terminate();
        resolve({ index });
      }
    }, 250);
    worker.onmessage = (e: MessageEvent<TargetReport>) => {
      clearInterval(timer);
      worker.terminate();
      resolve({ report: e.data });
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      clearInterval(timer);
      worker.terminate();
      reject(new Error(`the ${req.target} worker failed: ${e.message}`));
    };
    worker.postMessage(req);
  });
}

function printReport(r: TargetReport): void {
  const rate = r.seconds > 0 ? Math.round(r.inputs / r.seconds) : 0;
  const verdicts = Object.entries(r.verdicts).sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(
    `\n${r.target}: ${r.inputs} inputs in ${r.seconds.toFixed(1)} s, ${rate}/s; slowest ` +
      `${r.slowestMs.toFixed(3)} ms (index ${r.slowestIndex}, best of up to ${
        SLOW_RERUNS + 1
      } runs; slowest single run ${r.slowestRawMs.toFixed(2)} ms)`,
  );
  console.log(`  verdicts: ${verdicts}`);
  for (const s of r.scaling) {
    console.log(
      `  scaling "${s.family}": ${s.smallNsPerByte.toFixed(1)} ns/B at ${s.smallBytes} B, ` +
        `${s.largeNsPerByte.toFixed(1)} ns/B at ${s.largeBytes} B (${s.ratio.toFixed(2)}x)`,
    );
  }
}

function printFailure(f: Failure, seed: number): void {
  let where = "";
  if (f.bytes.length > 0 || f.index >= 0) {
    Deno.mkdirSync(CRASHES, { recursive: true });
    const file = new URL(`${f.target}-${seed}-${f.index}.bin`, CRASHES);
    Deno.writeFileSync(file, f.bytes);
    where = `\n    input: ${file.pathname} (${f.bytes.length} bytes)` +
      `\n    re-run: deno task fuzz --seed ${seed} --target ${f.target} --index ${f.index}`;
  }
  console.log(`  FAIL [${f.kind}] ${f.target} #${f.index}: ${f.message}${where}`);
  if (f.stack) console.log(f.stack.split("\n").map((l) => `    ${l}`).join("\n"));
}

if (import.meta.main) main();
