/**
 * The metric tables of docs/metrics.md, for tests that hold the documentation to what
 * `/metrics` really exports.
 *
 * @module
 */

/** One documented metric: its type, the Labels cell as written, and its "Across workers". */
export interface DocumentedMetric {
  type: string;
  labels: string;
  across: string;
}

/** Every row of docs/metrics.md that documents a metric, by the metric's name. */
export async function documentedMetrics(): Promise<Map<string, DocumentedMetric>> {
  const text = await Deno.readTextFile(new URL("../../docs/metrics.md", import.meta.url));
  const out = new Map<string, DocumentedMetric>();
  for (const line of text.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`((?:edgemux|process)_[a-z_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (name === undefined || cells.length < 6) continue;
    out.set(name, { type: cells[2], labels: cells[3], across: cells[4] });
  }
  return out;
}
