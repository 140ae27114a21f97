/**
 * What the benchmark's parts share: run lengths, the shape of results, and what a scenario gets
 * from the harness. Scenarios live in bench/scenarios/, the list of them in ./_scenarios.ts.
 *
 * @module
 */

import type { Backends, FILES, NameResolver } from "./_setup.ts";
import type { MicroResult } from "./_tools.ts";

/** The ways a client reaches a backend: no proxy, or one of the three proxies. */
export type TargetName = "direct" | "haproxy" | "edgemux" | "caddy";
export const TARGET_NAMES: readonly TargetName[] = ["direct", "haproxy", "edgemux", "caddy"];

/** The proxies (every target but direct). */
export type ProxyKind = Exclude<TargetName, "direct">;

/** Run lengths: the full run, or `--quick`. */
export interface Durations {
  wrkSeconds: number;
  iperfSeconds: number;
  h2loadSeconds: number;
  /** How long each ab run lasts (at most 100,000 requests). */
  abSeconds: number;
  download: keyof typeof FILES;
  /** Connections held at each memory step. */
  memorySteps: number[];
  /** How long the held connections settle before RSS is read. */
  memorySettleMs: number;
  /** Measure only issue 12's three kinds of held connection, not the older variants. */
  memoryIssueKindsOnly: boolean;
}

export const FULL: Durations = {
  wrkSeconds: 5,
  iperfSeconds: 3,
  h2loadSeconds: 3,
  abSeconds: 3,
  download: "big",
  memorySteps: [1000, 5000],
  memorySettleMs: 2000,
  memoryIssueKindsOnly: false,
};

export const QUICK: Durations = {
  wrkSeconds: 2,
  iperfSeconds: 1,
  h2loadSeconds: 1,
  abSeconds: 1,
  download: "small",
  memorySteps: [1000],
  memorySettleMs: 1000,
  memoryIssueKindsOnly: true,
};

/** One measured run. */
export interface Sample {
  value: number;
  /** What the CPU time is divided by: requests, or gigabytes moved. */
  ops: number;
  /** The proxy's CPU time during the run, in seconds (none for direct). */
  cpuSeconds?: number;
  /** CPU time per op in the case's CPU unit (none for direct). */
  cpuPerOp?: number;
  details: Record<string, number | string>;
}

/** All rounds of one case. */
export interface CaseResult {
  scenario: string;
  case: string;
  unit: string;
  cpuUnit: string;
  /** One entry per round; a target that cannot serve the case has no entry. */
  rounds: Partial<Record<TargetName, Sample>>[];
  /** The command run against edgemux in the last round, for reproduction. */
  command: string;
}

/** RSS of one proxy holding connections of one kind. */
export interface MemoryResult {
  kind: string;
  proxy: ProxyKind;
  /** RSS of the freshly started proxy, before any connection: "the idle process". */
  idleKiB: number;
  /** RSS after the warm-up connections were opened and closed, and 1 s. */
  baselineKiB: number;
  baselineFds: number;
  steps: { connections: number; rssKiB: number; settledKiB: number; fds: number }[];
}

/** One scenario that could not finish, and why. */
export interface ScenarioError {
  scenario: string;
  message: string;
}

/** Everything a run produced. */
export interface Results {
  cases: CaseResult[];
  memory: MemoryResult[];
  micro: MicroResult[];
  errors: ScenarioError[];
  /** Per scenario: where edgemux's CPU profile was saved (with `--cpu-prof`). */
  profiles: { scenario: string; file: string }[];
}

/** What scenarios need from the harness. */
export interface Context {
  dir: string;
  durations: Durations;
  rounds: number;
  cpuProf: boolean;
  /** Run only the cases whose name contains this (`--case`). */
  caseFilter?: string;
  backends: Backends;
  names: NameResolver;
  /** A captured ClientHello for the passthrough name. */
  helloFile: string;
  /** A captured ClientHello for the edge name. */
  edgeHelloFile: string;
  results: Results;
  log(message: string): void;
}

/** A scenario: a name for `--only`, a title for the report, and what it does. */
export interface Scenario {
  name: string;
  title: string;
  run(ctx: Context): Promise<void>;
}
