/**
 * A parser for the Prometheus text exposition format (version 0.0.4), strict enough to catch
 * what a scraper would reject or misread: `# HELP` and `# TYPE` lines, samples with labels and
 * escapes, optional timestamps, and the rules that tie them together (one TYPE per family,
 * before its samples; a family's samples in one group; no duplicate series; histogram buckets
 * cumulative with `le="+Inf"` equal to `_count`).
 *
 * The grammar, from the format's documentation:
 *
 * ```text
 * line        = comment | help | type | sample | ""
 * help        = "# HELP " name " " escaped-docstring        (escapes: \\ and \n)
 * type        = "# TYPE " name " " ("counter" | "gauge" | "histogram" | "summary" | "untyped")
 * sample      = name [ "{" [ label { "," label } [ "," ] ] "}" ] value [ timestamp ]
 * label       = label-name "=" '"' escaped-value '"'         (escapes: \\ \" and \n)
 * name        = [a-zA-Z_:] [a-zA-Z0-9_:]*
 * label-name  = [a-zA-Z_] [a-zA-Z0-9_]*
 * value       = a Go float: decimal or exponent form, "NaN", "+Inf", "-Inf"
 * timestamp   = an integer (milliseconds since the epoch)
 * ```
 *
 * @module
 */

import { requireTool } from "./tools.ts";

/** The type a `# TYPE` line declares (`untyped` when there is none). */
export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

/** One sample line. */
export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, `x_count` for histogram parts). */
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp: number | null;
  /** 1-based line number, for messages. */
  line: number;
}

/** A metric family: its HELP, TYPE and samples. */
export interface MetricFamily {
  name: string;
  help: string | null;
  type: MetricType;
  samples: Sample[];
}

/** One histogram series (one label set without `le`), checked for consistency. */
export interface HistogramSeries {
  labels: Record<string, string>;
  /** Upper bounds and cumulative counts, in increasing order of bound; the last is +Inf. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** Raised for any line that breaks the format, with its line number. */
export class PrometheusFormatError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "PrometheusFormatError";
  }
}

const TYPES: readonly MetricType[] = ["counter", "gauge", "histogram", "summary", "untyped"];

function isNameStart(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c === ":";
}

function isNameChar(c: string): boolean {
  return isNameStart(c) || (c >= "0" && c <= "9");
}

function isMetricName(s: string): boolean {
  if (s.length === 0 || !isNameStart(s[0])) return false;
  for (const c of s) if (!isNameChar(c)) return false;
  return true;
}

/** Parses a float as Prometheus (Go's ParseFloat) writes and reads it. */
function parseValue(text: string, line: number): number {
  switch (text) {
    case "NaN":
      return NaN;
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
  }
  // Digits, one optional sign, one point, one exponent with its own optional sign; nothing else.
  const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
  let i = 0;
  if (text[i] === "+" || text[i] === "-") i++;
  const intStart = i;
  while (isDigit(text[i])) i++;
  let digits = i - intStart;
  if (text[i] === ".") {
    const fracStart = ++i;
    while (isDigit(text[i])) i++;
    digits += i - fracStart;
  }
  let exponentOk = true;
  if (digits > 0 && (text[i] === "e" || text[i] === "E")) {
    i++;
    if (text[i] === "+" || text[i] === "-") i++;
    const expStart = i;
    while (isDigit(text[i])) i++;
    exponentOk = i > expStart;
  }
  if (digits === 0 || !exponentOk || i !== text.length) {
    throw new PrometheusFormatError(line, `${JSON.stringify(text)} is not a sample value`);
  }
  return Number(text);
}

/** Reads `name`, `{labels}`, value and timestamp from one sample line. */
function parseSample(text: string, line: number): Sample {
  let i = 0;
  const fail = (why: string): never => {
    throw new PrometheusFormatError(line, `${why} at column ${i + 1}: ${JSON.stringify(text)}`);
  };
  const skipBlanks = () => {
    while (text[i] === " " || text[i] === "\t") i++;
  };
  if (!isNameStart(text[i] ?? "")) fail("a sample must start with a metric name");
  const nameStart = i;
  while (i < text.length && isNameChar(text[i])) i++;
  const name = text.slice(nameStart, i);
  const labels: Record<string, string> = {};
  const afterName = i;
  skipBlanks();
  if (text[i] !== "{") i = afterName;
  else {
    i++;
    for (;;) {
      skipBlanks();
      if (text[i] === "}") {
        i++;
        break;
      }
      const c = text[i] ?? "";
      if (!(isNameStart(c) && c !== ":")) fail("expected a label name");
      const labelStart = i;
      while (i < text.length && isNameChar(text[i]) && text[i] !== ":") i++;
      const label = text.slice(labelStart, i);
      if (Object.hasOwn(labels, label)) fail(`label "${label}" appears twice`);
      skipBlanks();
      if (text[i] !== "=") fail(`expected "=" after label "${label}"`);
      i++;
      skipBlanks();
      if (text[i] !== '"') fail(`expected '"' to open the value of "${label}"`);
      i++;
      let value = "";
      for (;;) {
        if (i >= text.length) fail(`unterminated value of label "${label}"`);
        const ch = text[i++];
        if (ch === '"') break;
        if (ch !== "\\") {
          value += ch;
          continue;
        }
        const esc = text[i++];
        if (esc === "\\") value += "\\";
        else if (esc === '"') value += '"';
        else if (esc === "n") value += "\n";
        else fail(`unknown escape "\\${esc ?? ""}" in label "${label}"`);
      }
      labels[label] = value;
      skipBlanks();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        break;
      }
      fail('expected "," or "}" after a label');
    }
  }
  if (text[i] !== " " && text[i] !== "\t") fail("expected a blank before the value");
  skipBlanks();
  const rest = text.slice(i).trim().split(/[ \t]+/);
  if (rest.length === 0 || rest[0] === "") fail("missing value");
  if (rest.length > 2) fail("unexpected text after the timestamp");
  const value = parseValue(rest[0], line);
  let timestamp: number | null = null;
  if (rest.length === 2) {
    const t = rest[1];
    const body = t.startsWith("-") ? t.slice(1) : t;
    if (body === "" || [...body].some((c) => c < "0" || c > "9")) {
      throw new PrometheusFormatError(line, `${JSON.stringify(t)} is not a timestamp`);
    }
    timestamp = Number(t);
  }
  return { name, labels, value, timestamp, line };
}

function unescapeHelp(text: string, line: number): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "\\") {
      out += text[i];
      continue;
    }
    const esc = text[++i];
    if (esc === "\\") out += "\\";
    else if (esc === "n") out += "\n";
    else throw new PrometheusFormatError(line, `unknown escape "\\${esc ?? ""}" in HELP`);
  }
  return out;
}

/** The family a sample belongs to: histogram and summary parts share their base name. */
function familyOf(name: string, families: ReadonlyMap<string, MetricFamily>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const f = families.get(base);
    if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) {
      return base;
    }
  }
  return name;
}

function labelKey(labels: Record<string, string>, without?: string): string {
  return JSON.stringify(
    Object.keys(labels).filter((k) => k !== without).sort().map((k) => [
      k,
      labels[k],
    ]),
  );
}

/** A parsed exposition, with lookups for tests. */
export class Exposition {
  constructor(readonly families: ReadonlyMap<string, MetricFamily>) {}

  /** The family `name`; throws when it is absent. */
  family(name: string): MetricFamily {
    const f = this.families.get(name);
    if (f === undefined) {
      throw new Error(`no metric family "${name}"; have ${[...this.families.keys()].join(", ")}`);
    }
    return f;
  }

  /** Samples named `name` (a family, or a part such as `x_count`) whose labels include `match`. */
  samples(name: string, match: Record<string, string> = {}): Sample[] {
    const f = this.families.get(familyOf(name, this.families));
    if (f === undefined) return [];
    return f.samples.filter((s) =>
      s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)
    );
  }

  /** The sum of the values of {@linkcode samples}; 0 when none match. */
  sum(name: string, match: Record<string, string> = {}): number {
    return this.samples(name, match).reduce((n, s) => n + s.value, 0);
  }

  /** The value of the one sample with exactly these labels, or undefined. */
  value(name: string, labels: Record<string, string>): number | undefined {
    const key = labelKey(labels);
    return this.samples(name).find((s) => labelKey(s.labels) === key)?.value;
  }

  /** The series of histogram `name`, already checked for consistency by the parser. */
  histogram(name: string, match: Record<string, string> = {}): HistogramSeries[] {
    const f = this.family(name);
    if (f.type !== "histogram") throw new Error(`${name} is a ${f.type}, not a histogram`);
    return histogramSeries(f).filter((h) =>
      Object.entries(match).every(([k, v]) => h.labels[k] === v)
    );
  }
}

/** Groups a histogram family's samples into series and checks each one. */
function histogramSeries(f: MetricFamily): HistogramSeries[] {
  const bySeries = new Map<
    string,
    { labels: Record<string, string>; buckets: Sample[]; sum?: Sample; count?: Sample }
  >();
  const entry = (s: Sample) => {
    const key = labelKey(s.labels, "le");
    let e = bySeries.get(key);
    if (e === undefined) {
      const labels = { ...s.labels };
      delete labels.le;
      e = { labels, buckets: [] };
      bySeries.set(key, e);
    }
    return e;
  };
  for (const s of f.samples) {
    const e = entry(s);
    if (s.name === `${f.name}_bucket`) {
      if (!Object.hasOwn(s.labels, "le")) {
        throw new PrometheusFormatError(s.line, `${s.name} has no "le" label`);
      }
      e.buckets.push(s);
    } else if (s.name === `${f.name}_sum`) e.sum = s;
    else if (s.name === `${f.name}_count`) e.count = s;
    else throw new PrometheusFormatError(s.line, `${s.name} is not part of histogram ${f.name}`);
  }
  const out: HistogramSeries[] = [];
  for (const e of bySeries.values()) {
    const first = e.buckets[0]?.line ?? e.sum?.line ?? e.count?.line ?? 0;
    const where = `${f.name}${labelKey(e.labels)}`;
    if (e.sum === undefined || e.count === undefined) {
      throw new PrometheusFormatError(first, `${where} lacks its _sum or _count`);
    }
    const buckets = e.buckets.map((b) => ({ le: parseValue(b.labels.le, b.line), count: b.value }));
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i].le > buckets[i - 1].le)) {
        throw new PrometheusFormatError(e.buckets[i].line, `${where}: le values not increasing`);
      }
      if (buckets[i].count < buckets[i - 1].count) {
        throw new PrometheusFormatError(
          e.buckets[i].line,
          `${where}: bucket le=${e.buckets[i].labels.le} holds ${buckets[i].count}, fewer than ` +
            `the ${buckets[i - 1].count} of the smaller bucket (buckets must be cumulative)`,
        );
      }
    }
    const inf = buckets.at(-1);
    if (inf === undefined || inf.le !== Infinity) {
      throw new PrometheusFormatError(first, `${where} has no le="+Inf" bucket`);
    }
    if (inf.count !== e.count.value) {
      throw new PrometheusFormatError(
        e.count.line,
        `${where}: _count is ${e.count.value} but the +Inf bucket holds ${inf.count}`,
      );
    }
    if (buckets.some((b) => !Number.isInteger(b.count) || b.count < 0)) {
      throw new PrometheusFormatError(first, `${where}: bucket counts must be whole numbers`);
    }
    out.push({ labels: e.labels, buckets, sum: e.sum.value, count: e.count.value });
  }
  return out;
}

/**
 * Parses an exposition and checks it.
 *
 * @throws {PrometheusFormatError} naming the line that breaks the format or its rules
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const m = parsePrometheus(
 *   '# HELP up Whether it is up.\n# TYPE up gauge\nup{job="a \\"b\\""} 1\n',
 * );
 * assert.equal(m.value("up", { job: 'a "b"' }), 1);
 * ```
 */
export function parsePrometheus(text: string): Exposition {
  const families = new Map<string, MetricFamily>();
  /** Families whose sample group has ended: another family's samples came after them. */
  const closed = new Set<string>();
  const seriesSeen = new Set<string>();
  const typed = new Set<string>();
  let current: string | null = null;
  const lines = text.split("\n");
  if (text.length > 0 && !text.endsWith("\n")) {
    throw new PrometheusFormatError(lines.length, "the exposition must end with a line feed");
  }
  const declare = (name: string, line: number): MetricFamily => {
    if (!isMetricName(name)) {
      throw new PrometheusFormatError(line, `${JSON.stringify(name)} is not a metric name`);
    }
    let f = families.get(name);
    if (f === undefined) {
      f = { name, help: null, type: "untyped", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1;
    const raw = lines[n];
    if (raw.trim() === "") continue;
    if (raw.startsWith("#")) {
      const words = raw.slice(1).trimStart();
      const keyword = words.startsWith("HELP ") ? "HELP" : words.startsWith("TYPE ") ? "TYPE" : "";
      if (keyword === "") continue; // A plain comment.
      const rest = words.slice(5).trimStart();
      const space = rest.search(/[ \t]/);
      const name = space < 0 ? rest : rest.slice(0, space);
      const tail = space < 0 ? "" : rest.slice(space + 1);
      const f = declare(name, line);
      if (keyword === "HELP") {
        if (f.help !== null) throw new PrometheusFormatError(line, `second HELP for ${name}`);
        f.help = unescapeHelp(tail, line);
      } else {
        const type = tail.trim() as MetricType;
        if (!TYPES.includes(type)) {
          throw new PrometheusFormatError(line, `unknown type ${JSON.stringify(tail)}`);
        }
        if (f.samples.length > 0) {
          throw new PrometheusFormatError(line, `TYPE of ${name} comes after its samples`);
        }
        if (typed.has(name)) throw new PrometheusFormatError(line, `second TYPE for ${name}`);
        typed.add(name);
        f.type = type;
      }
      continue;
    }
    const sample = parseSample(raw, line);
    const familyName = familyOf(sample.name, families);
    const f = declare(familyName, line);
    if (current !== familyName) {
      if (closed.has(familyName)) {
        throw new PrometheusFormatError(
          line,
          `samples of ${familyName} are not in one group (another family's came between)`,
        );
      }
      if (current !== null) closed.add(current);
      current = familyName;
    }
    const key = `${sample.name}${labelKey(sample.labels)}`;
    if (seriesSeen.has(key)) {
      throw new PrometheusFormatError(line, `duplicate series ${key}`);
    }
    seriesSeen.add(key);
    if (f.type === "counter" && !(sample.value >= 0)) {
      throw new PrometheusFormatError(line, `counter ${sample.name} is ${sample.value}`);
    }
    if (Object.hasOwn(sample.labels, "le") && f.type !== "histogram") {
      // Only histogram buckets may use "le" as a label in this exposition.
      throw new PrometheusFormatError(line, `${sample.name} uses the reserved label "le"`);
    }
    f.samples.push(sample);
  }
  for (const f of families.values()) if (f.type === "histogram") histogramSeries(f);
  return new Exposition(families);
}

/** Fetches `url` (an admin listener's `/metrics`) and parses it. */
export async function scrapeMetrics(url: string, timeoutMs = 5000): Promise<Exposition> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}\n${text}`);
  return parsePrometheus(text);
}

/**
 * Scrapes `url` until `check` returns true for the exposition, or the time runs out; resolves
 * with the last exposition. Counters are updated when a connection ends, a moment after the
 * client sees its end.
 */
export async function scrapeUntil(
  url: string,
  check: (m: Exposition) => boolean,
  timeoutMs = 5000,
): Promise<Exposition> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const m = await scrapeMetrics(url);
    if (check(m) || performance.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Checks an exposition with Prometheus's own parser and linter (`promtool check metrics`, from
 * the Debian package `prometheus`): it must parse, and break none of the naming and help-text
 * rules promtool enforces.
 *
 * @throws {Error} quoting promtool's findings when it reports any
 */
export async function promtoolCheck(text: string): Promise<void> {
  const promtool = requireTool("promtool", "prometheus");
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (out.code !== 0 || said.trim() !== "") {
    throw new Error(`promtool check metrics exited ${out.code}:\n${said}`);
  }
}
