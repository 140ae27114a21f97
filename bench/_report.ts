/**
 * The Markdown report: issue 12's summary (each proxy ÷ HAProxy per scenario, with its target,
 * and the held-connection table), then one table per scenario with each target's median and
 * range, the ratios to HAProxy paired round by round, each proxy ÷ direct, and the proxies'
 * CPU time per request, connection or GB.
 *
 * @module
 */

import type {
  CaseResult,
  MemoryResult,
  ProxyKind,
  Results,
  Scenario,
  TargetName,
} from "./_types.ts";
import { CASES } from "./scenarios/throughput.ts";
import { MEMORY_KIND_NAMES, MEMORY_KINDS } from "./scenarios/memory.ts";
import { formatNumber, formatRatio, formatSummary, pairedRatios, summarize } from "./_stats.ts";

/** Facts about the machine and the tools, printed above the tables. */
export interface Environment {
  date: string;
  mode: string;
  rounds: number;
  seconds: number;
  cpu: string;
  cores: number;
  memory: string;
  kernel: string;
  versions: Record<string, string>;
  loadBefore: string;
  loadAfter: string;
  command: string;
}

function values(c: CaseResult, t: TargetName): (number | undefined)[] {
  return c.rounds.map((r) => r[t]?.value);
}

function cpu(c: CaseResult, t: TargetName): (number | undefined)[] {
  return c.rounds.map((r) => r[t]?.cpuPerOp);
}

function has(c: CaseResult, t: TargetName): boolean {
  return c.rounds.some((r) => r[t] !== undefined);
}

function ratioCell(a: (number | undefined)[], b: (number | undefined)[]): string {
  const s = summarize(pairedRatios(a, b));
  return formatSummary(s, formatRatio);
}

function summaryCell(xs: (number | undefined)[]): string {
  return formatSummary(summarize(xs.filter((x) => x !== undefined)));
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The table of one throughput scenario; columns for targets that took part. */
export function caseTable(cases: CaseResult[]): string {
  const direct = cases.some((c) => has(c, "direct"));
  const caddy = cases.some((c) => has(c, "caddy"));
  const proxies: ProxyKind[] = caddy ? ["haproxy", "edgemux", "caddy"] : ["haproxy", "edgemux"];
  const header = [
    "case",
    "unit",
    ...(direct ? ["direct"] : []),
    ...proxies,
    ...proxies.slice(1).map((p) => `${p} ÷ haproxy`),
    ...(direct ? proxies.map((p) => `${p} ÷ direct`) : []),
    ...proxies.map((p) => `${p} CPU`),
    ...proxies.slice(1).map((p) => `CPU ${p} ÷ haproxy`),
  ];
  const rows = cases.map((c) => [
    c.case,
    c.unit,
    ...(direct ? [summaryCell(values(c, "direct"))] : []),
    ...proxies.map((p) => summaryCell(values(c, p))),
    ...proxies.slice(1).map((p) => `**${ratioCell(values(c, p), values(c, "haproxy"))}**`),
    ...(direct ? proxies.map((p) => ratioCell(values(c, p), values(c, "direct"))) : []),
    ...proxies.map((p) => has(c, p) ? `${summaryCell(cpu(c, p))} ${c.cpuUnit}` : "–"),
    ...proxies.slice(1).map((p) => ratioCell(cpu(c, p), cpu(c, "haproxy"))),
  ]);
  return table(header, rows);
}

// ---------------------------------------------------------------------------------------------
// Issue 12's summary

interface SummaryRow {
  label: string;
  scenario: string;
  /** Its cases, by name; a row of several shows them joined by " / ". */
  cases: ((c: CaseResult) => boolean)[];
  /** Whether the target is about throughput or about CPU per op. */
  metric: "value" | "cpu";
  target: string;
}

const named = (name: string) => (c: CaseResult) => c.case === name;

/** The rows of issue 12's table, then the two-core scenario. */
export const SUMMARY_ROWS: readonly SummaryRow[] = [
  {
    label: "TCP forward, 1 / 4 streams",
    scenario: "tcp",
    cases: [named(CASES.iperf1), named(CASES.iperf4)],
    metric: "value",
    target: "held",
  },
  {
    label: "passthrough, 1 GiB download (256 MiB with --quick)",
    scenario: "passthrough",
    cases: [(c) => c.case.startsWith("download")],
    metric: "value",
    target: "held",
  },
  {
    label: "passthrough, small requests on kept-alive connections",
    scenario: "passthrough",
    cases: [named(CASES.passthroughKeepAlive)],
    metric: "value",
    target: "≥ 1.0",
  },
  {
    label: "passthrough, new connections: proxy CPU per connection",
    scenario: "passthrough",
    cases: [named(CASES.passthroughNew)],
    metric: "cpu",
    target: "≤ 1.0×",
  },
  {
    label: "edge, HTTP/1.1 keep-alive (wrk -c10 / -c100)",
    scenario: "edge",
    cases: [named(CASES.edgeKeepAlive), named(CASES.edgeKeepAlive100)],
    metric: "value",
    target: "≥ 1.0",
  },
  {
    label: "edge, new connections (full handshakes): proxy CPU per connection",
    scenario: "edge",
    cases: [named(CASES.edgeNew)],
    metric: "cpu",
    target: "≤ 1.0×",
  },
  {
    label: "edge, HTTP/2 (32 connections × 10 streams)",
    scenario: "edge",
    cases: [named(CASES.edgeH2)],
    metric: "value",
    target: "≥ 0.6",
  },
  {
    label: "redirect, keep-alive / new connections",
    scenario: "redirect",
    cases: [named(CASES.redirectKeepAlive), named(CASES.redirectNew)],
    metric: "value",
    target: "≥ 1.0",
  },
  {
    label: "two cores: edge, HTTP/1.1 keep-alive (wrk -t2 -c100)",
    scenario: "multicore",
    cases: [named(CASES.multiEdgeKeepAlive)],
    metric: "value",
    target: "–",
  },
  {
    label: "two cores: edge, new connections: proxy CPU per connection",
    scenario: "multicore",
    cases: [named(CASES.multiEdgeNew)],
    metric: "cpu",
    target: "–",
  },
  {
    label: "two cores: passthrough, new connections: proxy CPU per connection",
    scenario: "multicore",
    cases: [named(CASES.multiPassthroughNew)],
    metric: "cpu",
    target: "–",
  },
];

/**
 * Issue 12's table: per row, each proxy ÷ HAProxy (throughput, or CPU per op with `×`), paired
 * by round, median and range; then every proxy's CPU per op. Rows with no results are left out.
 */
export function summaryTable(cases: CaseResult[]): string {
  const rows: string[][] = [];
  for (const row of SUMMARY_ROWS) {
    const found = row.cases.map((pick) =>
      cases.find((c) => c.scenario === row.scenario && pick(c))
    );
    if (found.every((c) => c === undefined)) continue;
    const join = (cell: (c: CaseResult) => string) =>
      found.map((c) => c === undefined ? "–" : cell(c)).join(" / ");
    const ratio = (p: ProxyKind) =>
      join((c) => {
        if (!has(c, p)) return "–";
        const cell = row.metric === "cpu"
          ? ratioCell(cpu(c, p), cpu(c, "haproxy"))
          : ratioCell(values(c, p), values(c, "haproxy"));
        return row.metric === "cpu" ? `${cell}×` : cell;
      });
    const cpuOf = (c: CaseResult) =>
      (["haproxy", "edgemux", "caddy"] as const).filter((p) => has(c, p))
        .map((p) =>
          `${p} ${formatNumber(summarize(cpu(c, p).filter((x) => x !== undefined)).median)}`
        )
        .join(", ") + ` ${c.cpuUnit}`;
    rows.push([row.label, ratio("edgemux"), ratio("caddy"), row.target, join(cpuOf)]);
  }
  return table(
    ["scenario", "edgemux ÷ HAProxy", "Caddy ÷ HAProxy", "target", "proxy CPU per op (median)"],
    rows,
  );
}

// ---------------------------------------------------------------------------------------------
// Memory

/** KiB of RSS per held connection at step `i`, from the idle process or from the warm one. */
export function perConnKiB(m: MemoryResult | undefined, i: number, from: "idle" | "warm"): number {
  const s = m?.steps[i];
  if (!m || !s) return NaN;
  return (s.settledKiB - (from === "idle" ? m.idleKiB : m.baselineKiB)) / s.connections;
}

function fdsPerConn(m: MemoryResult | undefined, i: number): number {
  const s = m?.steps[i];
  return m && s ? (s.fds - m.baselineFds) / s.connections : NaN;
}

function mib(kib: number | undefined): string {
  return kib === undefined ? "–" : (kib / 1024).toFixed(1);
}

const MEMORY_TARGETS: Record<string, string> = {
  [MEMORY_KIND_NAMES.tcp]: "≤ 8 KB",
  [MEMORY_KIND_NAMES.passthroughRead1]: "≤ 8 KB",
  [MEMORY_KIND_NAMES.edgeRead1]: "≤ 32 KB",
};

function proxiesIn(memory: MemoryResult[]): ProxyKind[] {
  return (["haproxy", "edgemux", "caddy"] as const).filter((p) =>
    memory.some((m) => m.proxy === p)
  );
}

/**
 * Issue 12's held-connection table: KB (1,000 bytes) per connection, (RSS after settling −
 * the idle process) ÷ N, for each N; issue 12's three kinds first, then the older variants.
 */
export function memorySummaryTable(memory: MemoryResult[]): string {
  const order = MEMORY_KINDS.map((k) => k.kind);
  const kinds = [...new Set(memory.map((m) => m.kind))].sort((a, b) =>
    order.indexOf(a) - order.indexOf(b)
  );
  const proxies = proxiesIn(memory);
  const rows = kinds.map((kind) => {
    const issue = MEMORY_KINDS.find((k) => k.kind === kind)?.issue ?? false;
    const cells = proxies.map((p) => {
      const m = memory.find((x) => x.kind === kind && x.proxy === p);
      if (!m) return "–";
      return m.steps.map((_, i) => formatNumber(perConnKiB(m, i, "idle") * 1.024)).join(" / ");
    });
    return [issue ? kind : `${kind} (older variant)`, ...cells, MEMORY_TARGETS[kind] ?? "–"];
  });
  const steps = memory[0]?.steps.map((s) => s.connections.toLocaleString("en-US")).join(" / ");
  return table(
    ["held connection", ...proxies.map((p) => `${p} KB/conn (N = ${steps})`), "target"],
    rows,
  );
}

/**
 * The detailed memory table: KiB of RSS per held connection from the idle process and from the
 * warmed-up one, RSS itself, and descriptors per connection.
 */
export function memoryTable(memory: MemoryResult[]): string {
  const kinds = [...new Set(memory.map((m) => m.kind))];
  const proxies = proxiesIn(memory);
  const rows: string[][] = [];
  for (const kind of kinds) {
    const of = (p: ProxyKind) => memory.find((m) => m.kind === kind && m.proxy === p);
    const steps = Math.max(...proxies.map((p) => of(p)?.steps.length ?? 0));
    for (let i = 0; i < steps; i++) {
      const n = proxies.map((p) => of(p)?.steps[i]?.connections).find((x) => x !== undefined);
      rows.push([
        kind,
        (n ?? 0).toLocaleString("en-US"),
        ...proxies.map((p) =>
          of(p)
            ? `${formatNumber(perConnKiB(of(p), i, "idle"))} (${
              formatNumber(perConnKiB(of(p), i, "warm"))
            })`
            : "–"
        ),
        ...proxies.slice(1).map((p) =>
          `**${formatRatio(perConnKiB(of(p), i, "idle") / perConnKiB(of("haproxy"), i, "idle"))}**`
        ),
        ...proxies.map((p) => {
          const m = of(p);
          return m
            ? `${mib(m.idleKiB)} → ${mib(m.baselineKiB)} → ${mib(m.steps[i]?.settledKiB)}`
            : "–";
        }),
        proxies.map((p) => formatNumber(fdsPerConn(of(p), i))).join(" / "),
      ]);
    }
  }
  return table([
    "held connections",
    "N",
    ...proxies.map((p) => `${p} KiB/conn from idle (from warm)`),
    ...proxies.slice(1).map((p) => `${p} ÷ haproxy`),
    ...proxies.map((p) => `${p} RSS MiB (idle → warm → held)`),
    `fds/conn (${proxies.join(" / ")})`,
  ], rows);
}

function microTable(results: Results): string {
  return table(
    ["file", "benchmark", "avg ns/op", "p75 ns/op"],
    results.micro.map((m) => [m.file, m.name, formatNumber(m.avgNs), formatNumber(m.p75Ns)]),
  );
}

/** The whole report. */
export function renderReport(
  env: Environment,
  scenarios: readonly Scenario[],
  results: Results,
  profileSummaries: { scenario: string; file: string; top: string }[],
): string {
  const out: string[] = [];
  out.push(
    `# edgemux vs HAProxy ${env.versions.haproxy ?? ""} and Caddy ${env.versions.caddy ?? ""}: ` +
      "benchmark results",
  );
  out.push("");
  out.push(
    `${env.date}, ${env.mode}, ${env.rounds} round(s), ${env.seconds.toFixed(0)} s. ` +
      `\`${env.command}\``,
  );
  out.push("");
  out.push(
    `Machine: ${env.cpu}, ${env.cores} cores, ${env.memory} RAM, Linux ${env.kernel}; ` +
      `load average before ${env.loadBefore}, after ${env.loadAfter}.`,
  );
  out.push(
    `Versions: ${Object.entries(env.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`,
  );
  out.push("");
  out.push(
    "Each cell is the median over rounds, with the range in parentheses. Ratios are paired: " +
      "each round's edgemux (or Caddy) result divided by the same round's HAProxy (or direct) " +
      "result, " +
      "then the median and range of those. Higher is better for throughput; lower is better " +
      "for CPU time and memory. The client, the proxy and the backend share the same cores, " +
      "so absolute numbers move by up to ±40% between runs; compare ratios within one run.",
  );
  if (results.errors.length > 0) {
    out.push("");
    out.push("## FAILED scenarios");
    out.push("");
    for (const e of results.errors) {
      out.push(`- **${e.scenario}**: ${e.message.split("\n").join("\n  ")}`);
    }
  }
  if (results.cases.length > 0) {
    out.push("", "## Summary: issue 12's table", "");
    out.push(
      "Throughput rows: each proxy's requests (or bytes) per second ÷ HAProxy's. Rows marked " +
        "`×`: each proxy's CPU time per connection ÷ HAProxy's (lower is better). Both paired " +
        "by round, median (min–max). HAProxy `nbthread 1`, edgemux `workers: 1`, Caddy " +
        "`GOMAXPROCS=1`, except in the two-core rows.",
    );
    out.push("", summaryTable(results.cases));
  }
  if (results.memory.length > 0) {
    out.push("", "## Summary: memory per held connection", "");
    out.push(
      "KB (1,000 bytes) of RSS per held connection: (RSS after N connections are open and " +
        "settled − RSS of the idle process) ÷ N, as issue 12 measures it.",
    );
    out.push("", memorySummaryTable(results.memory));
  }
  for (const s of scenarios) {
    const cases = results.cases.filter((c) => c.scenario === s.name);
    if (s.name === "memory") {
      if (results.memory.length === 0) continue;
      out.push("", `## ${s.title}`, "");
      out.push(
        "RSS (VmRSS of the proxy process) grows by this much per connection held, measured " +
          "after the connections were opened and settled, from a fresh process: from its idle " +
          "RSS (issue 12's method), and in parentheses from its RSS after a warm-up of 20 " +
          "connections of the same kind (the method of earlier runs).",
      );
      out.push("", memoryTable(results.memory));
      continue;
    }
    if (s.name === "micro") {
      if (results.micro.length === 0) continue;
      out.push("", `## ${s.title}`, "", microTable(results));
      continue;
    }
    if (cases.length === 0) continue;
    out.push("", `## ${s.title}`, "", caseTable(cases));
    out.push("");
    out.push("<details><summary>commands (edgemux target, last round)</summary>", "");
    out.push(
      "wrk and ab run inside `unshare --mount` with a private hosts file that maps the " +
        "names to 127.0.0.1 (see BENCHMARKS.md).",
      "",
    );
    for (const c of cases) out.push(`- ${c.case}: \`${c.command}\``);
    out.push("", "</details>");
  }
  if (profileSummaries.length > 0) {
    out.push("", "## edgemux CPU profiles (`--cpu-prof`)", "");
    out.push(
      "Self time by function over each scenario (all cases and rounds), from V8's sampling " +
        "profiler. Open the .cpuprofile files in Chrome DevTools or speedscope for the call " +
        "trees.",
    );
    for (const p of profileSummaries) {
      out.push("", `### ${p.scenario}`, "", `\`${p.file}\``, "", p.top);
    }
  }
  return out.join("\n") + "\n";
}
