/**
 * The full-size reliability run: the six scenarios of tests/reliability_*_test.ts with their
 * FULL sizes (2,000 stalled clients, 20,000 flood connections, 1 GiB each way, …), one after
 * the other, each under a time limit. Prints a Markdown report of every figure and every failed
 * expectation, for docs/reliability.md.
 *
 *   deno run -A reliability/run.ts [--only NAME[,NAME…]] [--json FILE] [--markdown FILE]
 *
 * NAME is one of: slow-clients, flood, backend-faults, integrity, http-attacks, reload.
 * Exits 1 when any scenario found a problem. Everything runs on loopback; edgemux runs in a
 * child process (tests/_helpers/edgemux_process.ts) that is killed if this script dies.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { ScenarioResult } from "../tests/_helpers/reliability_kit.ts";
import * as slowClients from "../tests/_helpers/reliability_slow_clients.ts";
import * as flood from "../tests/_helpers/reliability_flood.ts";
import * as backendFaults from "../tests/_helpers/reliability_backend_faults.ts";
import * as integrity from "../tests/_helpers/reliability_integrity.ts";
import * as httpAttacks from "../tests/_helpers/reliability_http_attacks.ts";
import * as reload from "../tests/_helpers/reliability_reload.ts";

interface Scenario {
  name: string;
  title: string;
  /** The most a full run may take before it is abandoned. */
  limitMs: number;
  sizes: unknown;
  run: () => Promise<ScenarioResult>;
}

const SCENARIOS: Scenario[] = [
  {
    name: "slow-clients",
    title: "1. Slow clients",
    limitMs: 120_000,
    sizes: slowClients.FULL,
    run: () => slowClients.runSlowClients(slowClients.FULL),
  },
  {
    name: "flood",
    title: "2. Connection flood",
    limitMs: 240_000,
    sizes: flood.FULL,
    run: () => flood.runFlood(flood.FULL),
  },
  {
    name: "backend-faults",
    title: "3. Backend faults",
    limitMs: 240_000,
    sizes: backendFaults.FULL,
    run: () => backendFaults.runBackendFaults(backendFaults.FULL),
  },
  {
    name: "integrity",
    title: "4. Data integrity",
    limitMs: 240_000,
    sizes: integrity.FULL,
    run: () => integrity.runIntegrity(integrity.FULL),
  },
  {
    name: "http-attacks",
    title: "5. Hostile HTTP",
    limitMs: 180_000,
    sizes: httpAttacks.FULL,
    run: () => httpAttacks.runHttpAttacks(httpAttacks.FULL),
  },
  {
    name: "reload",
    title: "6. Reloads under load",
    limitMs: 180_000,
    sizes: reload.FULL,
    run: () => reload.runReload(reload.FULL),
  },
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string" },
    json: { type: "string" },
    markdown: { type: "string" },
  },
  strict: true,
});

const only = values.only?.split(",");
for (const name of only ?? []) {
  if (!SCENARIOS.some((s) => s.name === name)) {
    console.error(`unknown scenario "${name}"; one of: ${SCENARIOS.map((s) => s.name).join(", ")}`);
    Deno.exit(2);
  }
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function commit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).trim() || "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * Runs a scenario under its time limit; a scenario over it counts as failed (and, since what it
 * started cannot be cancelled, the run stops there rather than measure the next one beside it).
 */
async function runLimited(s: Scenario): Promise<ScenarioResult & { overran?: boolean }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const started = performance.now();
  try {
    return await Promise.race([
      s.run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`took longer than its ${s.limitMs / 1000} s limit`)),
          s.limitMs,
        );
      }),
    ]);
  } catch (e) {
    return {
      overran: true,
      name: s.name,
      figures: {},
      problems: [`the scenario did not finish: ${e instanceof Error ? e.stack : e}`],
      ms: Math.round(performance.now() - started),
    };
  } finally {
    clearTimeout(timer);
  }
}

const header = {
  date: new Date().toISOString(),
  commit: await commit(),
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
  loadBefore: loadAverage(),
  loadAfter: "",
};
console.error(
  `reliability run: commit ${header.commit}, deno ${header.deno}, ${header.cpus} CPUs, ` +
    `load ${header.loadBefore}`,
);
const results: { scenario: Scenario; result: ScenarioResult; load: string }[] = [];
for (const scenario of SCENARIOS) {
  if (only && !only.includes(scenario.name)) continue;
  console.error(`${scenario.title} …`);
  const result = await runLimited(scenario);
  const load = loadAverage();
  results.push({ scenario, result, load });
  console.error(
    `${scenario.title}: ${
      result.problems.length === 0 ? "passed" : `${result.problems.length} problems`
    } ` +
      `in ${(result.ms / 1000).toFixed(1)} s (load ${load})`,
  );
  if (result.overran) {
    console.error("stopping: the scenario that overran may still hold sockets and CPU");
    break;
  }
  // Deno closes TLS sockets on its pool of blocking threads; after the flood's thousands of
  // TLS connections, the test process's own closes lag for seconds, which the next scenario
  // would read as edgemux holding a connection open. Let the pool drain first.
  if (scenario.name === "flood") await new Promise((r) => setTimeout(r, 20_000));
}
header.loadAfter = loadAverage();

let md = `Full run of ${header.date}: commit ${header.commit}, Deno ${header.deno}, ` +
  `${header.cpus} CPUs, load average ${header.loadBefore} before and ${header.loadAfter} after.\n`;
for (const { scenario, result, load } of results) {
  md += `\n### ${scenario.title}\n\n`;
  md += `Sizes: \`${JSON.stringify(scenario.sizes)}\`. ` +
    `Took ${(result.ms / 1000).toFixed(1)} s; load average afterwards ${load}.\n\n`;
  md += "| figure | value |\n| --- | --- |\n";
  for (const [k, v] of Object.entries(result.figures)) {
    md += `| ${k} | ${String(v).replaceAll("|", "\\|")} |\n`;
  }
  md += result.problems.length === 0
    ? "\nNo problem found.\n"
    : `\n${result.problems.length} problems:\n\n` +
      result.problems.map((p) => `- ${p.replaceAll("\n", " ")}`).join("\n") + "\n";
}
console.log(md);
if (values.markdown) await Deno.writeTextFile(values.markdown, md);
if (values.json) {
  await Deno.writeTextFile(
    values.json,
    JSON.stringify(
      {
        ...header,
        results: results.map(({ scenario, result, load }) => ({
          ...result,
          sizes: scenario.sizes,
          load,
        })),
      },
      null,
      2,
    ) + "\n",
  );
}
Deno.exit(results.some(({ result }) => result.problems.length > 0) ? 1 : 0);
