/**
 * Counters, gauges and histograms, rendered in the Prometheus text exposition format (version
 * 0.0.4). The registry lives as long as the process, so counters survive reloads; with several
 * worker processes, each worker's snapshot is summed by the primary.
 *
 * @module
 */

/** Label names and values of one series; names are fixed per metric. */
export type Labels = Record<string, string>;

type Kind = "counter" | "gauge" | "histogram";

interface Family {
  name: string;
  help: string;
  kind: Kind;
  labelNames: readonly string[];
  buckets: readonly number[];
  /** Series by their label key. Counter/gauge: [value]; histogram: [...bucket counts, sum, count]. */
  series: Map<string, { labels: string[]; values: number[] }>;
  /** `max`: a gauge every worker reports the same fact in (a timestamp), not a share of it. */
  merge?: "max";
}

/** A plain-data copy of every series, for summing across worker processes. */
export type MetricsSnapshot = {
  name: string;
  help: string;
  kind: Kind;
  labelNames: readonly string[];
  buckets: readonly number[];
  series: { labels: string[]; values: number[] }[];
  /** How workers' series combine: added up (the default), or the largest (`max`). */
  merge?: "max";
}[];

/** Histogram buckets for request and connection durations, in seconds. */
export const DURATION_BUCKETS = [
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

/** A counter or gauge with fixed label names. */
export interface Series {
  inc(labels: string[], by?: number): void;
  set(labels: string[], value: number): void;
}

/** A histogram with fixed label names. */
export interface Histogram {
  observe(labels: string[], value: number): void;
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
    buckets: readonly number[] = [],
  ): Family {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { name, help, kind, labelNames, buckets, series: new Map() };
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
    };
  }

  counter(name: string, help: string, labelNames: readonly string[]): Series {
    return this.#single(this.#family(name, help, "counter", labelNames));
  }

  /**
   * @param opts `merge: "max"` for a gauge that states one fact each worker knows too (an
   * expiry time), which adding up across workers would falsify
   */
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[],
    opts: { merge?: "max" } = {},
  ): Series & { clear(): void } {
    const f = this.#family(name, help, "gauge", labelNames);
    if (opts.merge !== undefined) f.merge = opts.merge;
    return { ...this.#single(f), clear: () => f.series.clear() };
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[] = DURATION_BUCKETS,
  ): Histogram {
    const f = this.#family(name, help, "histogram", labelNames, buckets);
    return {
      observe: (labels, value) => {
        const v = this.#series(f, labels, buckets.length + 2);
        for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]) v[i]++;
        v[buckets.length] += value;
        v[buckets.length + 1]++;
      },
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
      labelNames: f.labelNames,
      buckets: f.buckets,
      series: [...f.series.values()].map((s) => ({ labels: s.labels, values: [...s.values] })),
      ...(f.merge !== undefined ? { merge: f.merge } : {}),
    }));
  }
}

/** Adds snapshots series by series (worker processes → one view). */
export function sumSnapshots(snapshots: MetricsSnapshot[]): MetricsSnapshot {
  const byName = new Map<string, MetricsSnapshot[number]>();
  for (const snap of snapshots) {
    for (const f of snap) {
      let into = byName.get(f.name);
      if (into === undefined) {
        into = { ...f, series: [] };
        byName.set(f.name, into);
      }
      for (const s of f.series) {
        const key = s.labels.join("\u0000");
        const same = into.series.find((x) => x.labels.join("\u0000") === key);
        if (same === undefined) into.series.push({ labels: s.labels, values: [...s.values] });
        else if (f.merge === "max") {
          s.values.forEach((v, i) => same.values[i] = Math.max(same.values[i], v));
        } else s.values.forEach((v, i) => same.values[i] += v);
      }
    }
  }
  return [...byName.values()];
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
