/**
 * A short summary of a V8 `.cpuprofile` (what `deno run --cpu-prof` writes): the functions
 * with the most self time, as a Markdown table.
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary. */
export interface HotFunction {
  name: string;
  location: string;
  selfMs: number;
  /** Share of the samples in which the process was not idle. */
  share: number;
}

function location(url: string, line: number, root: string): string {
  if (!url) return "";
  const short = url.replace(`file://${root}/`, "").replace(/^ext:/, "ext:");
  return `${short}:${line + 1}`;
}

/** The `limit` functions with the most self time; `root` is stripped from file URLs. */
export function hotFunctions(profile: CpuProfile, root: string, limit: number): HotFunction[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; location: string; us: number }>();
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    const us = profile.timeDeltas[i] ?? 0;
    const name = node.callFrame.functionName || "(anonymous)";
    if (name === "(idle)") continue;
    busyUs += us;
    const loc = location(node.callFrame.url, node.callFrame.lineNumber, root);
    const key = `${name}@${loc}`;
    const entry = self.get(key) ?? { name, location: loc, us: 0 };
    entry.us += us;
    self.set(key, entry);
  }
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({
      name: e.name,
      location: e.location,
      selfMs: e.us / 1000,
      share: busyUs > 0 ? e.us / busyUs : 0,
    }));
}

/** Reads a .cpuprofile file and renders its hottest functions as a Markdown table. */
export async function summarizeProfile(file: string, root: string, limit = 15): Promise<string> {
  const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
  const rows = hotFunctions(profile, root, limit).map((f) =>
    `| ${f.name.replaceAll("|", "\\|")} | ${f.location || "–"} | ${f.selfMs.toFixed(0)} | ${
      (f.share * 100).toFixed(1)
    }% |`
  );
  return [
    "| function | where | self ms | share of busy time |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
