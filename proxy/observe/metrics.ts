/**
 * Counters, gauges and histograms, rendered in the Prometheus text exposition format (version
 * 0.0.4). The registry lives as long as the process, so counters survive reloads; with several
 * worker processes, the supervisor combines the workers' snapshots metric by metric
 * ({@linkcode combineWorkers}).
 *
 * @module
 */

/** Label names and values of one series; names are fixed per metric. */
export type Labels = Record<string, string>;

type Kind = "counter" | "gauge" | "histogram";

/**
 * How the supervisor of several worker processes combines one metric's series into the one
 * view `/metrics` shows (docs/metrics.md lists the choice for every metric):
 *
 * - `sum`: added up, series by series. Counters, histograms, and gauges that count things each
 *   worker holds (open connections).
 * - `min`: the smallest value any worker reports. For state every worker should agree on, read
 *   pessimistically: a server is up only when every worker has it in rotation, and a
 *   certificate expires when the first worker's copy does.
 * - `max`: the largest value any worker reports. For a fact every worker reads from shared state
 *   and may see a moment later than another (an ACME order's failures, its next attempt).
 * - `supervisor`: the supervisor's own value; the workers' copies are dropped. For what describes
 *   the service as a whole (build, start time, reloads).
 * - `worker`: every process's series kept apart, with a `worker` label (`supervisor`, `0`,
 *   `1`, …). For what each process has of its own (memory, CPU, descriptors).
 */
export type Across = "sum" | "min" | "max" | "supervisor" | "worker";

/** The label the `worker` aggregation adds. */
export const WORKER_LABEL = "worker";

interface Family {
  name: string;
  help: string;
  kind: Kind;
  across: Across;
  labelNames: readonly string[];
  buckets: readonly number[];
  /** Series by their label key. Counter/gauge: [value]; histogram: [...bucket counts, sum, count]. */
  series: Map<string, { labels: string[]; values: number[] }>;
}

/** One family as plain data, for passing between processes. */
export interface FamilySnapshot {
  name: string;
  help: string;
  kind: Kind;
  across: Across;
  labelNames: readonly string[];
  buckets: readonly number[];
  series: { labels: string[]; values: number[] }[];
}

/** A plain-data copy of every series, for combining across worker processes. */
export type MetricsSnapshot = FamilySnapshot[];

/** Histogram buckets for request and connection durations up to a minute, in seconds. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** Where the buckets go on past a minute: 2, 5, 10 and 30 minutes, then hours, then days. */
const LONG_BUCKETS: readonly number[] = [
  120,
  300,
  600,
  1800,
  3600,
  2 * 3600,
  6 * 3600,
  12 * 3600,
  86400,
  2 * 86400,
  7 * 86400,
];

/**
 * Duration buckets whose last finite bound is at least `seconds` (a configured timeout), so an
 * operation that runs into its timeout lands in a bucket of its own rather than only in +Inf.
 * Every ladder is a prefix of the same sequence, so two processes configured differently still
 * share their common bounds (see {@linkcode combineWorkers}).
 */
export function durationBuckets(seconds: number): number[] {
  const out = [...DURATION_BUCKETS];
  for (const b of LONG_BUCKETS) {
    if (out[out.length - 1] >= seconds) break;
    out.push(b);
  }
  return out;
}

/** A counter or gauge with fixed label names. */
export interface Series {
  inc(labels: string[], by?: number): void;
  set(labels: string[], value: number): void;
  /** Creates the series at 0 if it does not exist, so a first event is an increase from 0. */
  init(labels: string[]): void;
}

/** A histogram with fixed label names. */
export interface Histogram {
  observe(labels: string[], value: number): void;
  /** Creates the series with every bucket at 0 if it does not exist. */
  init(labels: string[]): void;
}

/** Options of a family. */
export interface FamilyOptions {
  /** How workers' series combine (see {@linkcode Across}); counters and histograms add. */
  across?: Across;
}

/** Every metric of the process. */
export class Registry {
  readonly #families = new Map<string, Family>();
  /** Gauges computed when scraped (active connections, server health). */
  readonly #collectors: (() => void)[] = [];

  #family(
    name: string,
    help: string,
    kind: Kind,
    labelNames: readonly string[],
    across: Across,
    buckets: readonly number[] = [],
  ): Family {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { name, help, kind, across, labelNames, buckets, series: new Map() };
      this.#families.set(name, f);
    }
    return f;
  }

  #series(f: Family, labels: string[], width: number): number[] {
    const key = labels.join("\u0000");
    let s = f.series.get(key);
    if (s === undefined) {
      s = { labels: [...labels], values: new Array(width).fill(0) };
      f.series.set(key, s);
    }
    return s.values;
  }

  /** One number per label set, added to or set. */
  #single(f: Family): Series {
    return {
      inc: (labels, by = 1) => {
        this.#series(f, labels, 1)[0] += by;
      },
      set: (labels, value) => {
        this.#series(f, labels, 1)[0] = value;
      },
      init: (labels) => void this.#series(f, labels, 1),
    };
  }

  counter(
    name: string,
    help: string,
    labelNames: readonly string[],
    options: FamilyOptions = {},
  ): Series {
    return this.#single(this.#family(name, help, "counter", labelNames, options.across ?? "sum"));
  }

  gauge(
    name: string,
    help: string,
    labelNames: readonly string[],
    options: FamilyOptions & { across: Across },
  ): Series & { clear(): void } {
    const f = this.#family(name, help, "gauge", labelNames, options.across);
    return { ...this.#single(f), clear: () => f.series.clear() };
  }

  /**
   * A histogram. The buckets are fixed for the life of the registry (the first call that names
   * the family sets them), as a scraper's `rate()` over `_bucket` series needs.
   */
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[] = DURATION_BUCKETS,
    options: FamilyOptions = {},
  ): Histogram {
    const f = this.#family(name, help, "histogram", labelNames, options.across ?? "sum", buckets);
    const width = f.buckets.length + 2;
    return {
      observe: (labels, value) => {
        const v = this.#series(f, labels, width);
        for (let i = 0; i < f.buckets.length; i++) if (value <= f.buckets[i]) v[i]++;
        v[f.buckets.length] += value;
        v[f.buckets.length + 1]++;
      },
      init: (labels) => void this.#series(f, labels, width),
    };
  }

  /** Runs `fn` before every scrape, to refresh gauges that describe the present. */
  collect(fn: () => void): void {
    this.#collectors.push(fn);
  }

  /** A copy of every series. */
  snapshot(): MetricsSnapshot {
    for (const c of this.#collectors) c();
    return [...this.#families.values()].map((f) => ({
      name: f.name,
      help: f.help,
      kind: f.kind,
      across: f.across,
      labelNames: f.labelNames,
      buckets: f.buckets,
      series: [...f.series.values()].map((s) => ({ labels: s.labels, values: [...s.values] })),
    }));
  }
}

/** One worker's snapshot and its index (the value of the `worker` label). */
export interface WorkerSnapshot {
  worker: number;
  snapshot: MetricsSnapshot;
}

/**
 * The one view of a supervisor and its workers: each family combined as its {@linkcode Across}
 * says. Families come in the supervisor's order, then any only workers have.
 */
export function combineWorkers(
  supervisor: MetricsSnapshot,
  workers: WorkerSnapshot[],
): MetricsSnapshot {
  const out = new Map<string, FamilySnapshot>();
  const own = new Map(supervisor.map((f) => [f.name, f]));
  const first = (f: FamilySnapshot) => {
    let into = out.get(f.name);
    if (into === undefined) {
      into = { ...f, series: [] };
      if (f.across === "worker") into.labelNames = [...f.labelNames, WORKER_LABEL];
      out.set(f.name, into);
    }
    return into;
  };
  for (const f of supervisor) {
    const into = first(f);
    if (f.across === "supervisor") into.series = f.series.map(copySeries);
    if (f.across === "worker") {
      into.series = f.series.map((s) => ({
        labels: [...s.labels, "supervisor"],
        values: [...s.values],
      }));
    }
  }
  // Histograms keep the bounds every worker has (they share a prefix, durationBuckets()).
  for (const { snapshot } of workers) {
    for (const f of snapshot) {
      if (f.kind !== "histogram") continue;
      const into = first(f);
      into.buckets = into.buckets.filter((b) => f.buckets.includes(b));
    }
  }
  // Series of each combined family by label key, so combining stays linear in the series.
  const indexes = new Map<FamilySnapshot, Map<string, { labels: string[]; values: number[] }>>();
  for (const { worker, snapshot } of workers) {
    for (const f of snapshot) {
      // What the supervisor itself reports wins; a worker's copy would be counted twice.
      if (f.across === "supervisor" && own.has(f.name)) continue;
      const into = first(f);
      for (const s of f.series) {
        const values = f.kind === "histogram"
          ? rebucket(s.values, f.buckets, into.buckets)
          : s.values;
        if (f.across === "worker") {
          into.series.push({ labels: [...s.labels, String(worker)], values: [...values] });
          continue;
        }
        const key = s.labels.join("\u0000");
        let index = indexes.get(into);
        if (index === undefined) {
          index = new Map(into.series.map((x) => [x.labels.join("\u0000"), x]));
          indexes.set(into, index);
        }
        const same = index.get(key);
        if (same === undefined) {
          const copy = { labels: [...s.labels], values: [...values] };
          into.series.push(copy);
          index.set(key, copy);
        } else if (f.across === "supervisor") {
          // The supervisor has no value of its own here: the first worker's stands.
          continue;
        } else if (f.across === "min") {
          same.values[0] = Math.min(same.values[0], values[0]);
        } else if (f.across === "max") {
          same.values[0] = Math.max(same.values[0], values[0]);
        } else {
          values.forEach((v, i) => same.values[i] += v);
        }
      }
    }
  }
  return [...out.values()];
}

function copySeries(s: { labels: string[]; values: number[] }) {
  return { labels: [...s.labels], values: [...s.values] };
}

/**
 * A histogram series' values on `to`, a subset of its bounds `from`. The counts are cumulative,
 * so the count at a bound both share is exact; sum and count stay.
 */
function rebucket(values: number[], from: readonly number[], to: readonly number[]): number[] {
  if (from.length === to.length) return values;
  const out = to.map((le) => values[from.indexOf(le)]);
  return [...out, values[from.length], values[from.length + 1]];
}

/** Renders a snapshot in the Prometheus text format. */
export function renderPrometheus(snapshot: MetricsSnapshot): string {
  let out = "";
  for (const f of snapshot) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.kind}\n`;
    for (const s of f.series) {
      const base = f.labelNames.map((n, i) => `${n}="${escapeLabel(s.labels[i] ?? "")}"`);
      if (f.kind !== "histogram") {
        out += `${f.name}${braces(base)} ${formatNumber(s.values[0])}\n`;
        continue;
      }
      // Bucket counts are stored per bucket already cumulative (observe adds to every bucket
      // the value fits), as the format wants.
      f.buckets.forEach((le, i) => {
        out += `${f.name}_bucket${braces([...base, `le="${formatNumber(le)}"`])} ${s.values[i]}\n`;
      });
      const count = s.values[f.buckets.length + 1];
      out += `${f.name}_bucket${braces([...base, 'le="+Inf"'])} ${count}\n`;
      out += `${f.name}_sum${braces(base)} ${formatNumber(s.values[f.buckets.length])}\n`;
      out += `${f.name}_count${braces(base)} ${count}\n`;
    }
  }
  return out;
}

function braces(parts: string[]): string {
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}
