/**
 * The Markdown report: one table per scenario with each target's median and range, the ratio
 * edgemux ÷ haproxy paired round by round, each proxy ÷ direct, and the proxies' CPU time per
 * request (or per GB).
 *
 * @module
 */

import type { CaseResult, MemoryResult, Results, Scenario, TargetName } from "./_scenarios.ts";
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

function ratioCell(a: (number | undefined)[], b: (number | undefined)[]): string {
  const s = summarize(pairedRatios(a, b));
  return formatSummary(s, formatRatio);
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The table of one throughput scenario. */
export function caseTable(cases: CaseResult[]): string {
  const rows = cases.map((c) => [
    c.case,
    c.unit,
    formatSummary(summarize(values(c, "direct").filter((x) => x !== undefined))),
    formatSummary(summarize(values(c, "haproxy").filter((x) => x !== undefined))),
    formatSummary(summarize(values(c, "edgemux").filter((x) => x !== undefined))),
    `**${ratioCell(values(c, "edgemux"), values(c, "haproxy"))}**`,
    ratioCell(values(c, "haproxy"), values(c, "direct")),
    ratioCell(values(c, "edgemux"), values(c, "direct")),
    `${formatSummary(summarize(cpu(c, "haproxy").filter((x) => x !== undefined)))} ${c.cpuUnit}`,
    `${formatSummary(summarize(cpu(c, "edgemux").filter((x) => x !== undefined)))} ${c.cpuUnit}`,
    ratioCell(cpu(c, "edgemux"), cpu(c, "haproxy")),
  ]);
  return table([
    "case",
    "unit",
    "direct",
    "haproxy",
    "edgemux",
    "edgemux ÷ haproxy",
    "haproxy ÷ direct",
    "edgemux ÷ direct",
    "haproxy CPU",
    "edgemux CPU",
    "CPU edgemux ÷ haproxy",
  ], rows);
}

function perConn(m: MemoryResult | undefined, i: number): number {
  const s = m?.steps[i];
  return m && s ? (s.settledKiB - m.baselineKiB) / s.connections : NaN;
}

function fdsPerConn(m: MemoryResult | undefined, i: number): number {
  const s = m?.steps[i];
  return m && s ? (s.fds - m.baselineFds) / s.connections : NaN;
}

function mib(kib: number | undefined): string {
  return kib === undefined ? "–" : (kib / 1024).toFixed(1);
}

/** The memory table: KiB of RSS per held connection, after settling. */
export function memoryTable(memory: MemoryResult[]): string {
  const kinds = [...new Set(memory.map((m) => m.kind))];
  const rows: string[][] = [];
  for (const kind of kinds) {
    const h = memory.find((m) => m.kind === kind && m.proxy === "haproxy");
    const e = memory.find((m) => m.kind === kind && m.proxy === "edgemux");
    const steps = Math.max(h?.steps.length ?? 0, e?.steps.length ?? 0);
    for (let i = 0; i < steps; i++) {
      const n = h?.steps[i]?.connections ?? e?.steps[i]?.connections ?? 0;
      rows.push([
        kind,
        n.toLocaleString("en-US"),
        formatNumber(perConn(h, i)),
        formatNumber(perConn(e, i)),
        `**${formatRatio(perConn(e, i) / perConn(h, i))}**`,
        `${mib(h?.baselineKiB)} → ${mib(h?.steps[i]?.settledKiB)}`,
        `${mib(e?.baselineKiB)} → ${mib(e?.steps[i]?.settledKiB)}`,
        formatNumber(fdsPerConn(h, i)),
        formatNumber(fdsPerConn(e, i)),
      ]);
    }
  }
  return table([
    "held connections",
    "N",
    "haproxy KiB/conn",
    "edgemux KiB/conn",
    "edgemux ÷ haproxy",
    "haproxy RSS MiB (idle → held)",
    "edgemux RSS MiB (idle → held)",
    "haproxy fds/conn",
    "edgemux fds/conn",
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
  out.push(`# edgemux vs HAProxy ${env.versions.haproxy ?? ""}: benchmark results`.trimEnd());
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
      "each round's edgemux result divided by the same round's HAProxy (or direct) result, " +
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
  for (const s of scenarios) {
    const cases = results.cases.filter((c) => c.scenario === s.name);
    if (s.name === "memory") {
      if (results.memory.length === 0) continue;
      out.push("", `## ${s.title}`, "");
      out.push(
        "RSS (VmRSS of the proxy process) grows by this much per connection held, measured " +
          "after the connections were opened and a short settle, from a fresh process warmed " +
          "up with 20 connections of the same kind.",
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
