/**
 * The size rule of docs/architecture.md: main.ts stays under 200 lines (the command line only),
 * and no TypeScript file is over 600 lines without a reason written at its top, a sentence
 * starting `Long because` in its first 30 lines. The parser (config/parse*.ts) and the HTTP/1.1
 * wire codec (proxy/http/wire/) are exempt: each follows one grammar from top to bottom.
 */

import { deepEqual, ok } from "node:assert/strict";
import { join, relative } from "node:path";
import { REPO_ROOT } from "./_helpers/edgemux_cli.ts";

/** The most lines a file may have without a reason. */
const MAX_LINES = 600;
/** main.ts has fewer lines than this. */
const MAIN_LIMIT = 200;
/** How far from the top the reason must stand. */
const REASON_WITHIN = 30;
/** Folders not walked: version control, dependencies, build and coverage output. */
const SKIPPED_DIRS = new Set(["node_modules", "cov", "dist"]);

/** Lines as `wc -l` counts them: a last line without a line feed counts too. */
function lineCount(text: string): number {
  if (text === "") return 0;
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** Whether `path` (relative to the repository, with `/`) is exempt from the rule. */
function exempt(path: string): boolean {
  return /^config\/parse[^/]*\.ts$/.test(path) || path.startsWith("proxy/http/wire/");
}

/** Every file of `files` over the limit without a reason, as `path (N lines)`. */
function longWithoutReason(files: ReadonlyMap<string, string>): string[] {
  const bad: string[] = [];
  for (const [path, text] of files) {
    if (exempt(path)) continue;
    const lines = lineCount(text);
    if (lines <= MAX_LINES) continue;
    const top = text.split("\n").slice(0, REASON_WITHIN).join("\n");
    if (!top.includes("Long because")) bad.push(`${path} (${lines} lines)`);
  }
  return bad.sort();
}

/** Every .ts file under the repository, by path relative to it, with its text. */
async function sources(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) {
        if (!entry.name.startsWith(".") && !SKIPPED_DIRS.has(entry.name)) await walk(path);
      } else if (entry.isFile && entry.name.endsWith(".ts")) {
        out.set(relative(REPO_ROOT, path), await Deno.readTextFile(path));
      }
    }
  };
  await walk(REPO_ROOT);
  return out;
}

Deno.test("the size rule catches a long file without a reason, and only that", () => {
  const long = (top: string) => `${top}\n${"x;\n".repeat(MAX_LINES)}`;
  const files = new Map([
    ["proxy/long.ts", long("/** A module. */")],
    ["tests/reasoned_test.ts", long("/**\n * Tests.\n * Long because it covers a grammar.\n */")],
    [
      "tests/late_reason_test.ts",
      `${"\n".repeat(REASON_WITHIN)}// Long because too late.\n` +
      "x;\n".repeat(MAX_LINES),
    ],
    ["proxy/short.ts", "x;\n".repeat(MAX_LINES)],
    ["config/parse_listeners.ts", long("")],
    ["proxy/http/wire/head.ts", long("")],
    ["config/other.ts", long("")],
  ]);
  deepEqual(longWithoutReason(files), [
    `config/other.ts (${MAX_LINES + 1} lines)`,
    `proxy/long.ts (${MAX_LINES + 1} lines)`,
    `tests/late_reason_test.ts (${MAX_LINES + REASON_WITHIN + 1} lines)`,
  ]);
});

const files = await sources();

Deno.test(`no .ts file is over ${MAX_LINES} lines without "Long because" at its top`, () => {
  ok(files.has("mod.ts") && files.size > 200, `only ${files.size} files found`);
  deepEqual(longWithoutReason(files), []);
});

Deno.test(`main.ts is the command line only: under ${MAIN_LIMIT} lines`, () => {
  const lines = lineCount(files.get("main.ts") ?? "");
  ok(lines > 0 && lines < MAIN_LIMIT, `main.ts has ${lines} lines`);
});
