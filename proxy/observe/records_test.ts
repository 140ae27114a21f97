import { deepEqual, equal, ok } from "node:assert/strict";
import {
  type AccessRecord,
  END_REASONS,
  type EndReason,
  endSource,
  REQUEST_END_REASONS,
  requestEndSource,
} from "./records.ts";
import { ProxyMetrics } from "./proxy_metrics.ts";

function record(end: EndReason): AccessRecord {
  return {
    conn: 1,
    listener: "main",
    client: "127.0.0.1:1",
    protocol: null,
    sni: null,
    alpn: [],
    route: null,
    backend: null,
    server: null,
    up: 0,
    down: 0,
    ms: 0,
    end,
    detail: null,
    requests: null,
  };
}

/** The rows of the table after `<!-- marker -->` in docs/metrics.md: [end, side]. */
async function documentedEnds(marker: string): Promise<[string, string][]> {
  const text = await Deno.readTextFile(new URL("../../docs/metrics.md", import.meta.url));
  const start = text.indexOf(`<!-- ${marker} -->`);
  ok(start >= 0, `docs/metrics.md has no "<!-- ${marker} -->"`);
  const rows: [string, string][] = [];
  let inTable = false;
  for (const line of text.slice(start).split("\n").slice(1)) {
    if (!line.startsWith("|")) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    const cells = line.split("|").map((c) => c.trim());
    const end = /^`([a-z0-9-]+)`$/.exec(cells[1])?.[1];
    if (end !== undefined) rows.push([end, cells[2]]);
  }
  return rows;
}

Deno.test("the end label of edgemux_connections_total takes exactly the EndReason values", () => {
  const metrics = new ProxyMetrics();
  for (const end of END_REASONS) metrics.connection(record(end));
  const family = metrics.registry.snapshot().find((f) => f.name === "edgemux_connections_total");
  ok(family);
  const at = family.labelNames.indexOf("end");
  const seen = new Set(family.series.map((s) => s.labels[at]));
  deepEqual([...seen].sort(), [...END_REASONS].sort());
});

Deno.test("every end names its side, and the names say it: client-* downstream, upstream-* upstream", () => {
  equal(new Set(END_REASONS).size, END_REASONS.length);
  for (const end of END_REASONS) {
    if (end.startsWith("client-")) equal(endSource(end), "downstream", end);
    if (end.startsWith("upstream-")) equal(endSource(end), "upstream", end);
    ok(
      !end.startsWith("server-") || end === "server-full",
      `${end}: the server side is upstream-*`,
    );
  }
  for (const end of REQUEST_END_REASONS) {
    if (end.startsWith("client-")) equal(requestEndSource(end), "downstream", end);
    if (end.startsWith("upstream-")) equal(requestEndSource(end), "upstream", end);
  }
});

Deno.test("a request end shared with connections has the same side in both lists", () => {
  const connection = new Set<string>(END_REASONS);
  for (const end of REQUEST_END_REASONS) {
    if (connection.has(end)) equal(requestEndSource(end), endSource(end as EndReason), end);
  }
});

Deno.test("docs/metrics.md lists every connection end and every request end, with its side", async () => {
  deepEqual(
    await documentedEnds("connection ends"),
    END_REASONS.map((e) => [e, endSource(e)]),
  );
  deepEqual(
    (await documentedEnds("request ends")).sort(),
    REQUEST_END_REASONS.map((e) => [e, requestEndSource(e)]).sort(),
  );
});
