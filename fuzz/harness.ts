/**
 * What a fuzz target is and how one is run: generate an input from (seed, target, index), time
 * the call under test, check its properties, count its verdicts, keep the failures. Shared by
 * `fuzz/run.ts` (a million inputs, in a worker with a watchdog) and `tests/fuzz_test.ts` (a
 * few thousand, in-process).
 *
 * @module
 */

import { Rng } from "./rng.ts";

/**
 * Thrown by a target's own checks when the code under test returned something it must not.
 * Anything else thrown while a case runs came from the code under test: an uncaught exception.
 */
export class PropertyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PropertyError";
  }
}

/** Fails the current case with `message` unless `ok`. */
export function check(ok: boolean, message: string | (() => string)): asserts ok {
  if (!ok) throw new PropertyError(typeof message === "string" ? message : message());
}

/** One generated input, ready to run. */
export interface FuzzCase {
  /**
   * Calls the code under test, which is what the time bound applies to, and returns the checks
   * of what it returned. Those run untimed and give a short verdict label for the counts. Must
   * behave the same every time it is called (slow cases are re-run).
   */
  run(): () => string;
  /** The input as written to `fuzz/crashes/`; {@linkcode FuzzTarget.replay} reads it back. */
  bytes(): Uint8Array;
}

/** A family of inputs whose cost must grow linearly with their size. */
export interface ScalingFamily {
  name: string;
  /** One input of roughly `size` bytes; `bytes` is its actual size. */
  make(rng: Rng, size: number): { run(): void; bytes: number };
}

/** A function (or a few related ones) under fuzz. */
export interface FuzzTarget {
  name: string;
  /** What is called and what is checked, for `--help`. */
  summary: string;
  /** This target's share of the default run of 1,000,000 inputs. */
  share: number;
  /**
   * A single input taking longer than `maxMs + maxMsPerKiB × its size in KiB` (confirmed by
   * re-runs) fails the run.
   */
  maxMs: number;
  maxMsPerKiB?: number;
  /** Loads seeds; called once before the first input. */
  setup(): void;
  generate(rng: Rng): FuzzCase;
  /** Rebuilds a case from the bytes of a crash file. */
  replay(bytes: Uint8Array): FuzzCase;
  scaling: ScalingFamily[];
}

/** What went wrong with one input, or with one scaling family (index -1). */
export interface Failure {
  target: string;
  index: number;
  kind: "exception" | "property" | "slow" | "superlinear" | "hang";
  message: string;
  stack: string;
  bytes: Uint8Array;
}

/** How one scaling family behaved. */
export interface ScalingResult {
  family: string;
  smallBytes: number;
  largeBytes: number;
  smallNsPerByte: number;
  largeNsPerByte: number;
  /** largeNsPerByte / smallNsPerByte: about 1 (or below) when linear, about 16 when quadratic. */
  ratio: number;
}

/** The figures of one target's run. */
export interface TargetReport {
  target: string;
  seed: number;
  /** Index of the first input. */
  start: number;
  inputs: number;
  /** Wall time of the inputs (generation included), without the scaling checks. */
  seconds: number;
  /** Time inside the calls under test only. */
  runSeconds: number;
  /** The slowest input: the largest over all inputs of each one's best of up to 5 runs. */
  slowestMs: number;
  slowestIndex: number;
  /** The slowest single measurement, noise (GC, other processes) included. */
  slowestRawMs: number;
  verdicts: Record<string, number>;
  /** The failures kept: the first few inputs of each distinct failure. */
  failures: Failure[];
  /** Every failure, counted by {@linkcode failureSignature}. */
  failureCounts: Record<string, number>;
  scaling: ScalingResult[];
}

/** Options of {@linkcode runTarget}. */
export interface RunOptions {
  seed: number;
  count: number;
  /** Index of the first input; default 0. */
  start?: number;
  /** Inputs kept per distinct failure; default 3. The others are only counted. */
  keepPerFailure?: number;
  /** Stop the target once this many distinct failures were seen; default 20. */
  maxDistinctFailures?: number;
  /** Run the scaling families after the inputs; default true. */
  scaling?: boolean;
  /** Ratio above which a scaling family fails; default 4 (linear ≈ 1, quadratic ≈ 16). */
  maxScalingRatio?: number;
  /**
   * Where the index of the input being run is published, for a watchdog in another thread:
   * slot 0 holds the index, slot 1 is 1 while a call under test runs.
   */
  progress?: Int32Array;
}

/** Re-runs of a case that went over its time bound; the fastest counts (GC, other processes). */
export const SLOW_RERUNS = 4;

/** A report of no inputs yet: no time spent, no verdicts, no failures. */
export function emptyReport(target: string, seed: number, start: number): TargetReport {
  return {
    target,
    seed,
    start,
    inputs: 0,
    seconds: 0,
    runSeconds: 0,
    slowestMs: 0,
    slowestIndex: -1,
    slowestRawMs: 0,
    verdicts: {},
    failures: [],
    failureCounts: {},
    scaling: [],
  };
}

/** Runs `count` inputs of `target` from `start` and then its scaling families. */
export function runTarget(target: FuzzTarget, opts: RunOptions): TargetReport {
  const start = opts.start ?? 0;
  const keep = opts.keepPerFailure ?? 3;
  const maxDistinct = opts.maxDistinctFailures ?? 20;
  const progress = opts.progress;
  target.setup();
  const report = emptyReport(target.name, opts.seed, start);
  const record = (f: Failure) => {
    const sig = failureSignature(f);
    const seen = report.failureCounts[sig] ?? 0;
    report.failureCounts[sig] = seen + 1;
    if (seen < keep) report.failures.push(f);
  };
  const began = performance.now();
  let runMs = 0;
  for (let index = start; index < start + opts.count; index++) {
    if (Object.keys(report.failureCounts).length >= maxDistinct) break;
    let fcase: FuzzCase;
    try {
      fcase = target.generate(Rng.forInput(opts.seed, target.name, index));
    } catch (e) {
      // A generator bug, not a finding; say so rather than blame the code under test.
      throw new Error(`fuzz generator of ${target.name} failed at index ${index}: ${e}`, {
        cause: e,
      });
    }
    if (progress !== undefined) {
      progress[0] = index;
      Atomics.store(progress, 1, 1);
    }
    const result = timeCase(fcase);
    if (progress !== undefined) Atomics.store(progress, 1, 0);
    report.inputs++;
    runMs += result.ms;
    if ("error" in result) {
      record(failureOf(target.name, index, result.error, fcase));
      report.verdicts.failed = (report.verdicts.failed ?? 0) + 1;
      continue;
    }
    report.slowestRawMs = Math.max(report.slowestRawMs, result.ms);
    // A single measurement may include a GC pause or time lost to another process. A time that
    // would be the new slowest, or break the bound, is measured again and the best run counts;
    // so slowestMs is the largest over all inputs of each input's best time, at little cost.
    let ms = result.ms;
    let bound = target.maxMs;
    if (ms > bound && target.maxMsPerKiB) bound += target.maxMsPerKiB * fcase.bytes().length / 1024;
    for (let i = 0; i < SLOW_RERUNS && (ms > report.slowestMs || ms > bound); i++) {
      ms = Math.min(ms, timeCase(fcase).ms);
    }
    if (ms > bound) {
      record({
        target: target.name,
        index,
        kind: "slow",
        message: `one input took ${ms.toFixed(2)} ms (best of ${SLOW_RERUNS + 1} runs), over the ${
          bound.toFixed(0)
        } ms bound`,
        stack: "",
        bytes: fcase.bytes(),
      });
    }
    if (ms > report.slowestMs) {
      report.slowestMs = ms;
      report.slowestIndex = index;
    }
    report.verdicts[result.verdict] = (report.verdicts[result.verdict] ?? 0) + 1;
  }
  report.seconds = (performance.now() - began) / 1000;
  report.runSeconds = runMs / 1000;

  if (opts.scaling ?? true) {
    const limit = opts.maxScalingRatio ?? 4;
    for (const [i, family] of target.scaling.entries()) {
      if (progress !== undefined) {
        progress[0] = -1 - i; // a new value for each family, so the watchdog sees progress
        Atomics.store(progress, 1, 1);
      }
      const r = measureScaling(family, opts.seed, target.name);
      if (progress !== undefined) Atomics.store(progress, 1, 0);
      report.scaling.push(r);
      if (r.ratio > limit) {
        record({
          target: target.name,
          index: -1,
          kind: "superlinear",
          message: `${family.name}: ${r.largeNsPerByte.toFixed(1)} ns/byte at ${r.largeBytes} ` +
            `bytes against ${r.smallNsPerByte.toFixed(1)} ns/byte at ${r.smallBytes} bytes ` +
            `(${r.ratio.toFixed(1)}x, bound ${limit}x)`,
          stack: "",
          bytes: new Uint8Array(0),
        });
      }
    }
  }
  return report;
}

type Timed = { ms: number; verdict: string } | { ms: number; error: unknown };

function timeCase(fcase: FuzzCase): Timed {
  const t0 = performance.now();
  let checks: () => string;
  try {
    checks = fcase.run();
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
  const ms = performance.now() - t0;
  try {
    return { ms, verdict: checks() };
  } catch (error) {
    return { ms, error };
  }
}

/**
 * What makes two failures the same bug: their kind, their message with numbers and quoted
 * values blanked, and for an exception the first stack frame (without line numbers).
 */
export function failureSignature(f: Failure): string {
  if (f.kind === "slow" || f.kind === "hang") return f.kind;
  if (f.kind === "superlinear") return `${f.kind}: ${f.message.split(":")[0]}`;
  const message = f.message.split(/: [{[]/)[0].replace(/"[^"]*"/g, '""').replace(/\d+/g, "N");
  // The file of the first frame: for a stack overflow the function varies, the file does not.
  const frame =
    f.stack.split("\n").map((l) => /\((?:file|ext):[^)]*\)|at ((?:file|ext):.*)$/.exec(l))
      .find((m) => m !== null)?.[0].replace(/^at /, "").replace(/^\(|\)$/g, "")
      .replace(/:\d+:\d+$/, "") ?? "";
  return `${f.kind}: ${message.slice(0, 160)}${f.kind === "exception" ? ` at ${frame}` : ""}`;
}

function failureOf(target: string, index: number, error: unknown, fcase: FuzzCase): Failure {
  const isProperty = error instanceof PropertyError;
  const message = error instanceof Error
    ? `${error.name}: ${error.message}`
    : `non-Error thrown: ${String(error)}`;
  return {
    target,
    index,
    kind: isProperty ? "property" : "exception",
    message,
    stack: error instanceof Error ? error.stack ?? "" : "",
    bytes: fcase.bytes(),
  };
}

const SMALL = 1024;
const LARGE = 16384;
const SCALING_INPUTS = 6;
const SCALING_TRIALS = 5;
/** Bytes processed per trial and size; small inputs are run more often to match. */
const SCALING_BUDGET = 2 * 1024 * 1024;
const SCALING_TRIAL_CAP_MS = 1000;

/**
 * ns/byte on ~1 KB inputs against ~16 KB inputs of the same family. Each size runs the same
 * number of bytes in total, and the best of several trials counts, so noise from other processes
 * can only make the ratio look better, not fail a linear family.
 */
export function measureScaling(
  family: ScalingFamily,
  seed: number,
  target: string,
  budget = SCALING_BUDGET,
): ScalingResult {
  const build = (size: number) => {
    const inputs = [];
    for (let i = 0; i < SCALING_INPUTS; i++) {
      inputs.push(family.make(Rng.forInput(seed, `${target}/${family.name}/${size}`, i), size));
    }
    return inputs;
  };
  const small = build(SMALL);
  const large = build(LARGE);
  const nsPerByte = (inputs: { run(): void; bytes: number }[]) => {
    const total = inputs.reduce((n, x) => n + x.bytes, 0);
    const reps = Math.max(1, Math.round(budget / total));
    let best = Infinity;
    for (let t = 0; t < SCALING_TRIALS; t++) {
      const t0 = performance.now();
      let done = 0;
      let elapsed = 0;
      // A family that is clearly too slow is measured on what fits in the time cap.
      outer: for (let r = 0; r < reps; r++) {
        for (const x of inputs) {
          x.run();
          done += x.bytes;
          elapsed = performance.now() - t0;
          if (elapsed > SCALING_TRIAL_CAP_MS) break outer;
        }
      }
      best = Math.min(best, (elapsed * 1e6) / done);
      if (elapsed > SCALING_TRIAL_CAP_MS) break;
    }
    return { ns: best, bytes: Math.round(total / inputs.length) };
  };
  // Warm up both sizes first so neither pays for compilation.
  small[0].run();
  large[0].run();
  const s = nsPerByte(small);
  const l = nsPerByte(large);
  return {
    family: family.name,
    smallBytes: s.bytes,
    largeBytes: l.bytes,
    smallNsPerByte: s.ns,
    largeNsPerByte: l.ns,
    ratio: l.ns / s.ns,
  };
}
