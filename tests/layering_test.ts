/**
 * The import rules of docs/architecture.md, checked on the real module graph (`deno info`):
 * no module imports itself through others, the pure layers (config/, routing/) never reach into
 * the data plane, routing/ takes only config/types.ts from config/, the data plane (proxy/) never
 * reaches up into the process layer (server/), the command line (cli/) or the library face, the
 * command line keeps out of the data plane, only main.ts ends the process, and neither main.ts,
 * cli/ nor mod.ts reaches into private modules.
 */

import { deepEqual, ok } from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO_ROOT } from "./_helpers/edgemux_cli.ts";

interface Edge {
  to: string;
  /** Imported for its values (not only `import type`). */
  code: boolean;
}

/** The product's modules (no tests, benchmarks or fuzzers) and their imports inside the repo. */
async function productGraph(): Promise<Map<string, Edge[]>> {
  const graph = new Map<string, Edge[]>();
  for (const entry of ["main.ts", "mod.ts"]) await addGraph(graph, entry);
  return graph;
}

async function addGraph(graph: Map<string, Edge[]>, entry: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const local = (specifier: string | undefined) =>
    specifier?.startsWith("file://") ? relative(REPO_ROOT, fileURLToPath(specifier)) : null;
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (from === null) continue;
    const edges: Edge[] = [];
    for (const d of m.dependencies ?? []) {
      const code = local(d.code?.specifier);
      const type = local(d.type?.specifier);
      if (code !== null) edges.push({ to: code, code: true });
      else if (type !== null) edges.push({ to: type, code: false });
    }
    graph.set(from, edges);
  }
}

/** Every cycle's modules (strongly connected components of more than one module). */
function cycles(graph: Map<string, Edge[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, index.get(to)!));
    }
    if (low.get(v) === index.get(v)) {
      const part: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        part.push(w);
      } while (w !== v);
      if (part.length > 1) found.push(part.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = await productGraph();

Deno.test("the module graph has every product module and no import cycle", () => {
  ok(graph.has("main.ts") && graph.has("mod.ts") && graph.has("proxy/runtime.ts"));
  ok(graph.size > 40, `only ${graph.size} modules found`);
  deepEqual(cycles(graph), []);
});

Deno.test("config/ and routing/ import nothing from the data plane or the process layer", () => {
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith("config/") && !from.startsWith("routing/")) continue;
    for (const { to } of edges) {
      if (!to.startsWith("config/") && !to.startsWith("routing/")) bad.push(`${from} -> ${to}`);
    }
  }
  deepEqual(bad, []);
});

Deno.test("routing/ takes from config/ only the shared vocabulary, config/types.ts", () => {
  // config/ may use routing's pure matchers to check a config; routing/ compiles configs and
  // needs their types, never the parser: so no logic of either depends on the other's.
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith("routing/")) continue;
    for (const e of edges) {
      if (e.to.startsWith("config/") && e.to !== "config/types.ts") bad.push(`${from} -> ${e.to}`);
    }
  }
  deepEqual(bad, []);
});

Deno.test("proxy/ imports nothing from server/, cli/, mod.ts or main.ts", () => {
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith("proxy/")) continue;
    for (const { to } of edges) {
      if (
        to.startsWith("server/") || to.startsWith("cli/") || to === "mod.ts" || to === "main.ts"
      ) {
        bad.push(`${from} -> ${to}`);
      }
    }
  }
  deepEqual(bad, []);
});

Deno.test("server/ is the process layer: it may use the library, never the command line", () => {
  ok([...graph.keys()].some((m) => m.startsWith("server/")), "no server/ module in the graph");
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith("server/")) continue;
    for (const { to } of edges) {
      if (to === "main.ts" || to.startsWith("cli/")) bad.push(`${from} -> ${to}`);
    }
  }
  deepEqual(bad, []);
});

Deno.test("cli/ uses the library, the process layer and the pure layers, not the data plane", () => {
  // The one way into proxy/ is how things read: route descriptions (as the status page shows
  // them) and whether standard error is the journal (proxy/observe/).
  ok([...graph.keys()].some((m) => m.startsWith("cli/")), "no cli/ module in the graph");
  const allowed = (to: string) =>
    to === "mod.ts" || to === "build_info.ts" ||
    ["cli/", "server/", "config/", "routing/", "proxy/observe/"].some((d) => to.startsWith(d));
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith("cli/")) continue;
    for (const { to } of edges) if (!allowed(to)) bad.push(`${from} -> ${to}`);
  }
  deepEqual(bad, []);
});

Deno.test("only main.ts ends the process", async () => {
  const bad: string[] = [];
  for (const from of graph.keys()) {
    if (from === "main.ts") continue;
    const text = await Deno.readTextFile(`${REPO_ROOT}/${from}`);
    if (/\bDeno\.exit\s*\(/.test(text)) bad.push(from);
  }
  deepEqual(bad, []);
});

Deno.test("the command line (main.ts, cli/) reaches no private module directly", () => {
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    if (from !== "main.ts" && !from.startsWith("cli/")) continue;
    for (const { to } of edges) {
      if (to.split("/").some((part) => part.startsWith("_"))) bad.push(`${from} -> ${to}`);
    }
  }
  deepEqual(bad, []);
});

Deno.test("mod.ts, the public face, reaches no private module of another folder directly", () => {
  const bad = (graph.get("mod.ts") ?? [])
    .filter((e) => e.to.split("/").some((part) => part.startsWith("_")))
    .map((e) => e.to);
  deepEqual(bad, []);
});
