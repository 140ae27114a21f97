import assert from "node:assert/strict";
import { caseTable, memorySummaryTable, perConnKiB, summaryTable } from "./_report.ts";
import type { CaseResult, MemoryResult, Sample } from "./_types.ts";
import { CASES } from "./scenarios/throughput.ts";
import { MEMORY_KIND_NAMES } from "./scenarios/memory.ts";

const sample = (value: number, cpuPerOp?: number): Sample => ({
  value,
  ops: 1,
  cpuPerOp,
  details: {},
});

const edgeKeepAlive: CaseResult = {
  scenario: "edge",
  case: CASES.edgeKeepAlive,
  unit: "req/s",
  cpuUnit: "µs/req",
  command: "",
  rounds: [
    { haproxy: sample(100, 10), edgemux: sample(50, 20), caddy: sample(40, 25) },
    { haproxy: sample(200, 10), edgemux: sample(120, 20), caddy: sample(60, 25) },
  ],
};

const passthroughNew: CaseResult = {
  scenario: "passthrough",
  case: CASES.passthroughNew,
  unit: "req/s",
  cpuUnit: "µs/conn",
  command: "",
  rounds: [{ direct: sample(9), haproxy: sample(10, 100), edgemux: sample(8, 150) }],
};

Deno.test("summaryTable() pairs ratios by round and marks CPU rows with ×", () => {
  const text = summaryTable([edgeKeepAlive, passthroughNew]);
  // Rounds 50/100 and 120/200: median 0.55, range 0.50–0.60. Caddy 0.40 and 0.30.
  assert.match(
    text,
    /\| edge, HTTP\/1\.1 keep-alive \(wrk -c10 \/ -c100\) \| 0\.55 \(0\.50–0\.60\) \/ – \| 0\.35 \(0\.30–0\.40\) \/ – \| ≥ 1\.0 \|/,
  );
  // CPU per connection: 150 / 100; Caddy does not serve passthrough.
  assert.match(
    text,
    /\| passthrough, new connections: proxy CPU per connection \| 1\.50× \| – \| ≤ 1\.0× \|/,
  );
  // Rows with no results are left out.
  assert.doesNotMatch(text, /HTTP\/2/);
});

Deno.test("caseTable() has Caddy's columns only when Caddy took part", () => {
  assert.match(caseTable([edgeKeepAlive]).split("\n")[0], /caddy ÷ haproxy/);
  assert.doesNotMatch(caseTable([passthroughNew]).split("\n")[0], /caddy/);
});

Deno.test("memorySummaryTable() gives KB per connection from the idle process, for each N", () => {
  const m = (proxy: "haproxy" | "edgemux", idle: number, warm: number): MemoryResult => ({
    kind: MEMORY_KIND_NAMES.tcp,
    proxy,
    idleKiB: idle,
    baselineKiB: warm,
    baselineFds: 10,
    steps: [
      { connections: 1000, rssKiB: 0, settledKiB: idle + 10_000, fds: 2010 },
      { connections: 5000, rssKiB: 0, settledKiB: idle + 40_000, fds: 10010 },
    ],
  });
  const edgemux = m("edgemux", 60_000, 62_000);
  assert.equal(perConnKiB(edgemux, 0, "idle"), 10);
  assert.equal(perConnKiB(edgemux, 0, "warm"), 8);
  const text = memorySummaryTable([m("haproxy", 20_000, 20_000), edgemux]);
  // 10 KiB = 10.24 KB at 1,000; 8 KiB = 8.19 KB at 5,000.
  assert.match(
    text,
    /\| TCP forward, connected and idle \| 10\.2 \/ 8\.19 \| 10\.2 \/ 8\.19 \| ≤ 8 KB \|/,
  );
  assert.match(text.split("\n")[0], /N = 1,000 \/ 5,000/);
});
