/**
 * docs/metrics.md against the registry of a running edgemux: every metric it exports is listed
 * with its type and with how workers combine it, and nothing else is listed.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import type { Across } from "../proxy/observe/metrics.ts";
import { startTcpBackend } from "./_helpers/backends.ts";
import { certPath, keyPath } from "./_helpers/certs.ts";
import { startEdgemux } from "./_helpers/edgemux.ts";
import { documentedMetrics } from "./_helpers/metrics_docs.ts";

/** The words docs/metrics.md uses for each aggregation. */
const ACROSS_WORDS: Record<Across, string> = {
  sum: "sum",
  min: "min",
  max: "max",
  supervisor: "supervisor",
  worker: "per process",
};

Deno.test("docs/metrics.md lists every metric edgemux registers, with its type and its aggregation across workers", async () => {
  await using backend = await startTcpBackend("b", "echo");
  await using edgemux = await startEdgemux(`version: 1
certificates:
  files: [{ cert: ${certPath("edge-wildcard")}, key: ${keyPath("edge-wildcard")} }]
  watch_interval: 0s
backends:
  b:
    servers: ["127.0.0.1:${backend.port}"]
    health_check: { type: tcp, interval: 1s, timeout: 500ms }
listeners:
  main:
    bind: "127.0.0.1:0"
    routes:
      - { name: web, sni: web.example.test, edge: b }
      - { name: tcp, forward: b }
`);
  const snapshot = edgemux.proxy.metrics.registry.snapshot();
  const docs = await documentedMetrics();
  for (const family of snapshot) {
    const row = docs.get(family.name);
    ok(row, `${family.name} is not in docs/metrics.md`);
    equal(row.type, family.kind, family.name);
    equal(row.across, ACROSS_WORDS[family.across], family.name);
    for (const label of family.labelNames) {
      ok(row.labels.includes(`\`${label}\``), `docs/metrics.md: ${family.name} lacks ${label}`);
    }
  }
  const registered = new Set(snapshot.map((f) => f.name));
  deepEqual([...docs.keys()].filter((n) => !registered.has(n)), [], "documented, not registered");
});
