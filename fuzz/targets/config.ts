/**
 * Target `config`: `parseConfig(text, file)` and `parseConfigSources(sources)` from
 * config/parse.ts, on texts mutated line by line and character by character from the example
 * config, the YAML blocks of docs/config.md and the seeds in fuzz/seeds/.
 *
 * Checked for every input: the call returns a config or throws `ConfigError`, nothing else; a
 * ConfigError holds at least one error; every issue (warnings of a usable config included) has a
 * severity, a key path, a message and a fix, and a position that is null or names one of the
 * given files at a line and column inside that file's text.
 *
 * @module
 */

import {
  CONFIG_KEYS,
  type ConfigSource,
  parseConfigSources,
  type ParsedConfig,
} from "../../config/parse.ts";
import { ConfigError, type ConfigIssue } from "../../config/errors.ts";
import { check, type FuzzCase, type FuzzTarget, type ScalingFamily } from "../harness.ts";
import type { Rng } from "../rng.ts";
import { ODD_TEXT, SCALARS } from "./_config_values.ts";

const ROOT = new URL("../../", import.meta.url);
const SEEDS = new URL("../seeds/", import.meta.url);

/** Every key name the config knows, from every place it may appear. */
export const ALL_KEYS: readonly string[] = [...new Set(Object.values(CONFIG_KEYS).flat())];

let seedTexts: string[] | null = null;

/** config.example.yaml, every ```yaml block of docs/config.md, and fuzz/seeds/*.yaml. */
export function configSeeds(): string[] {
  if (seedTexts !== null) return seedTexts;
  const texts = [Deno.readTextFileSync(new URL("config.example.yaml", ROOT))];
  const doc = Deno.readTextFileSync(new URL("docs/config.md", ROOT));
  for (const block of doc.matchAll(/^```yaml\n([\s\S]*?)^```/gm)) texts.push(block[1]);
  const names = [...Deno.readDirSync(SEEDS)].filter((e) => e.name.endsWith(".yaml"))
    .map((e) => e.name).sort();
  for (const name of names) texts.push(Deno.readTextFileSync(new URL(name, SEEDS)));
  seedTexts = texts;
  return texts;
}

// ---------------------------------------------------------------------------------------------
// Values (the tables are in ./_config_values.ts).

function randomValue(rng: Rng, doc: string[]): string {
  const r = rng.float();
  if (r < 0.35) return rng.pick(SCALARS);
  if (r < 0.6) {
    // A value that is already somewhere in the same text: names that resolve, shapes that fit.
    const line = rng.pick(doc);
    const m = /:\s+(.+)$/.exec(line);
    if (m) return m[1];
  }
  if (r < 0.7) return `&a${rng.below(4)} ${rng.pick(SCALARS)}`;
  if (r < 0.8) return `*a${rng.below(4)}`;
  if (r < 0.85) {
    return `[${Array.from({ length: rng.int(0, 5) }, () => rng.pick(SCALARS)).join(", ")}]`;
  }
  if (r < 0.9) return `{ ${rng.pick(ALL_KEYS)}: ${rng.pick(SCALARS)} }`;
  if (r < 0.95) return rng.pick(ODD_TEXT).repeat(rng.int(1, 3));
  return longString(rng, rng.int(100, 20000));
}

function longString(rng: Rng, n: number): string {
  return rng.pick(["a", "9", "é", "/a", "ab.", "\\x"]).repeat(Math.ceil(n / 2)).slice(0, n);
}

function typo(rng: Rng, word: string): string {
  if (word.length === 0) return "x";
  const i = rng.below(word.length);
  switch (rng.below(6)) {
    case 0:
      return word.slice(0, i) + word.slice(i + 1); // a letter dropped
    case 1:
      return word.slice(0, i) + rng.pick("abcdefghijklmnopqrstuvwxyz_-") + word.slice(i); // added
    case 2:
      return i + 1 < word.length // neighbours swapped
        ? word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2)
        : word + word[i];
    case 3:
      return word.toUpperCase();
    case 4:
      return word.replaceAll("_", rng.pick(["-", "", " ", "."]));
    default:
      return word.slice(0, i) + rng.pick("abcdefghijklmnopqrstuvwxyz") + word.slice(i + 1);
  }
}

/** Nested collections `depth` deep, in flow or block style. */
export function deepNesting(rng: Rng, depth: number, indent = ""): string {
  switch (rng.below(5)) {
    case 0:
      return "[".repeat(depth) + "]".repeat(depth);
    case 1:
      return "{a: ".repeat(depth) + "1" + "}".repeat(depth);
    case 2:
      return "[{a: ".repeat(depth) + "1" + "}]".repeat(depth);
    case 3: // compact block sequences: `- - - x`, two bytes a level
      return `\n${indent}  ` + "- ".repeat(depth) + "x";
    default: {
      // One line a level, each indented one more; capped, as the text grows with depth².
      let s = "";
      for (let i = 0; i < Math.min(depth, 400); i++) s += `\n${indent}${" ".repeat(i + 2)}- `;
      return s + "x";
    }
  }
}

/**
 * A billion-laughs block: each anchor a list of `width` aliases of the one before, `levels`
 * deep. Written under `key` at the top so the aliases are defined before they are used.
 */
export function aliasBomb(levels: number, width: number, key = "x-lol"): string {
  let s = `${key}:\n  - &lol0 "lol"\n`;
  for (let i = 1; i <= levels; i++) {
    s += `  - &lol${i} [${Array(width).fill(`*lol${i - 1}`).join(", ")}]\n`;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Text mutations.

const KEY_LINE = /^(\s*(?:-\s+)?)([^\s:#][^:#]*?)(\s*:)(\s+|$)(.*)$/;

function mutateText(rng: Rng, text: string, seeds: string[]): string {
  const lines = text.split("\n");
  const n = lines.length;
  const at = rng.below(n);
  switch (rng.below(18)) {
    case 0: // line deleted
      lines.splice(at, 1);
      break;
    case 1: // line duplicated
      lines.splice(at, 0, lines[at]);
      break;
    case 2: { // two lines swapped
      const other = rng.below(n);
      [lines[at], lines[other]] = [lines[other], lines[at]];
      break;
    }
    case 3: { // indentation changed, for one line or a run of them
      const count = rng.chance(0.7) ? 1 : rng.int(2, 6);
      const how = rng.below(4);
      for (let i = at; i < Math.min(n, at + count); i++) {
        if (how === 0) lines[i] = " ".repeat(rng.pick([1, 2, 4])) + lines[i];
        else if (how === 1) lines[i] = lines[i].replace(/^ {1,2}/, "");
        else if (how === 2) lines[i] = lines[i].replace(/^ +/, (s) => "\t".repeat(s.length / 2));
        else lines[i] = lines[i].trimStart();
      }
      break;
    }
    case 4:
    case 5: { // a key renamed: another known key, a typo of one, or something else
      const m = KEY_LINE.exec(lines[at]);
      if (!m) break;
      const r = rng.float();
      const key = r < 0.4
        ? rng.pick(ALL_KEYS)
        : r < 0.85
        ? typo(rng, rng.chance(0.5) ? m[2] : rng.pick(ALL_KEYS))
        : rng.pick(["<<", "? x", "1", "true", "null", '"quoted"', "'a b'", "é", "[a]"]);
      lines[at] = m[1] + key + m[3] + m[4] + m[5];
      break;
    }
    case 6:
    case 7:
    case 8: { // a value replaced
      const m = KEY_LINE.exec(lines[at]);
      if (!m) {
        if (/^\s*-\s/.test(lines[at])) {
          lines[at] = lines[at].replace(/-\s.*$/, "- " + randomValue(rng, lines));
        }
        break;
      }
      lines[at] = m[1] + m[2] + m[3] + " " + randomValue(rng, lines);
      break;
    }
    case 9: { // an anchor put on a value, its alias elsewhere
      const name = `a${rng.below(4)}`;
      const m = KEY_LINE.exec(lines[at]);
      if (m && m[5] !== "") lines[at] = `${m[1]}${m[2]}${m[3]} &${name} ${m[5]}`;
      const other = rng.below(n);
      const m2 = KEY_LINE.exec(lines[other]);
      if (m2) lines[other] = `${m2[1]}${m2[2]}${m2[3]} *${name}`;
      break;
    }
    case 10: { // an alias bomb defined at the top and used somewhere
      const levels = rng.int(2, 9);
      const width = rng.int(2, 10);
      const bomb = aliasBomb(levels, width, rng.chance(0.5) ? "x-lol" : rng.pick(ALL_KEYS));
      const other = rng.below(n);
      const m = KEY_LINE.exec(lines[other]);
      if (m) lines[other] = `${m[1]}${m[2]}${m[3]} *lol${rng.int(0, levels)}`;
      const versionLine = lines.findIndex((l) => l.startsWith("version"));
      lines.splice(versionLine + 1, 0, ...bomb.trimEnd().split("\n"));
      break;
    }
    case 11: { // odd characters inserted into a line
      const line = lines[at];
      const i = rng.below(line.length + 1);
      let insert = "";
      for (let k = rng.int(1, 3); k > 0; k--) insert += rng.pick(ODD_TEXT);
      lines[at] = line.slice(0, i) + insert + line.slice(i);
      break;
    }
    case 12: { // a character deleted
      const line = lines[at];
      if (line.length === 0) break;
      const i = rng.below(line.length);
      lines[at] = line.slice(0, i) + line.slice(i + 1);
      break;
    }
    case 13: { // a very long line: as a value, a key, or a comment
      const long = longString(rng, rng.int(1000, 60000));
      const m = KEY_LINE.exec(lines[at]);
      if (m && rng.chance(0.6)) lines[at] = m[1] + m[2] + m[3] + " " + long;
      else if (m) lines[at] = m[1] + long + m[3] + " " + m[5];
      else lines.splice(at, 0, "# " + long);
      break;
    }
    case 14: { // deep nesting as a value
      const m = KEY_LINE.exec(lines[at]);
      if (!m) break;
      const depth = rng.chance(0.8) ? rng.int(2, 60) : rng.int(60, 12000);
      lines[at] = m[1] + m[2] + m[3] + " " + deepNesting(rng, depth, m[1]);
      break;
    }
    case 15: { // lines from another seed spliced in
      const other = rng.pick(seeds).split("\n");
      const from = rng.below(other.length);
      lines.splice(at, 0, ...other.slice(from, from + rng.int(1, 8)));
      break;
    }
    case 16: { // document-level syntax
      const what = rng.pick([
        "---",
        "...",
        "%YAML 1.2",
        "%YAML 1.1\n---",
        "%TAG ! tag:example.com,2000:",
        "<<: *a0",
        "? [a, b]\n: c",
        "- stray",
        "!!map",
        "&top",
      ]);
      lines.splice(at, 0, what);
      break;
    }
    default: { // line endings and byte-order marks
      const r = rng.below(3);
      if (r === 0) return "\ufeff" + lines.join("\n");
      if (r === 1) return lines.join("\r\n");
      lines[at] += "\r";
      break;
    }
  }
  return lines.join("\n");
}

/** Splits a text into 2–3 files by its top-level keys, each starting with `version: 1`. */
function splitSources(rng: Rng, text: string): ConfigSource[] {
  const blocks: string[] = [];
  for (const line of text.split("\n")) {
    if (/^[^\s#-]/.test(line) || blocks.length === 0) blocks.push(line);
    else blocks[blocks.length - 1] += "\n" + line;
  }
  const files = rng.int(2, 3);
  const parts: string[][] = Array.from({ length: files }, () => []);
  for (const b of blocks) {
    if (b.startsWith("version")) continue;
    parts[rng.below(files)].push(b);
    // The same block in two files: every name it defines is then defined twice.
    if (rng.chance(0.1)) parts[rng.below(files)].push(b);
  }
  return parts.map((p, i) => ({
    file: `conf.d/${i}0-part.yaml`,
    text: (rng.chance(0.95) ? "version: 1\n" : "") + p.join("\n") + "\n",
  }));
}

// ---------------------------------------------------------------------------------------------
// Checks.

/** The lines of each source, split once per input rather than once per issue. */
const linesOf = new WeakMap<ConfigSource, string[]>();

function sourceLines(source: ConfigSource): string[] {
  let lines = linesOf.get(source);
  if (lines === undefined) {
    lines = source.text.split("\n");
    linesOf.set(source, lines);
  }
  return lines;
}

/** Checks one issue against the sources it is about. */
export function checkIssue(issue: ConfigIssue, sources: readonly ConfigSource[]): void {
  const show = () => JSON.stringify(issue).slice(0, 400);
  check(issue.severity === "error" || issue.severity === "warning", () => `severity: ${show()}`);
  check(typeof issue.path === "string", () => `path: ${show()}`);
  check(
    typeof issue.message === "string" && issue.message.trim().length > 0,
    () => `no message: ${show()}`,
  );
  check(typeof issue.fix === "string" && issue.fix.trim().length > 0, () => `no fix: ${show()}`);
  const p = issue.position;
  if (p === null) return;
  const source = sources.find((s) => s.file === p.file);
  check(source !== undefined, () => `position names a file that was not given: ${show()}`);
  check(
    typeof p.file === "string" && p.file.length > 0,
    () => `position without a file: ${show()}`,
  );
  const all = sourceLines(source);
  const lines = all.length;
  check(
    Number.isInteger(p.line) && p.line >= 1 && p.line <= lines,
    () => `line ${p.line} outside 1..${lines}: ${show()}`,
  );
  const lineText = all[p.line - 1];
  check(
    Number.isInteger(p.column) && p.column >= 1 && p.column <= lineText.length + 1,
    () => `column ${p.column} outside 1..${lineText.length + 1}: ${show()}`,
  );
}

/** Words that mean an issue was worded from a missing or mistyped value. */
const SMELLS = /\bundefined\b|\bNaN\b|\[object /;

type Outcome = { parsed: ParsedConfig } | { error: ConfigError };

/** Parses; anything thrown but a ConfigError goes on up. */
function parseSources(sources: ConfigSource[]): Outcome {
  try {
    return { parsed: parseConfigSources(sources) };
  } catch (e) {
    if (e instanceof ConfigError) return { error: e };
    throw e;
  }
}

/** Parses, checks, and names the outcome. */
export function checkSources(sources: ConfigSource[]): string {
  return checkOutcome(sources, parseSources(sources));
}

function checkOutcome(sources: ConfigSource[], outcome: Outcome): string {
  let issues: ConfigIssue[];
  let verdict: string;
  if ("parsed" in outcome) {
    const parsed = outcome.parsed;
    issues = parsed.warnings;
    check(Array.isArray(issues), "warnings is not a list");
    check(issues.every((i) => i.severity === "warning"), "an error among the warnings");
    check(Array.isArray(parsed.config.listeners), "config without listeners");
    verdict = issues.length > 0 ? "config with warnings" : "config";
  } else {
    issues = outcome.error.issues;
    check(Array.isArray(issues), "ConfigError without issues");
    check(issues.some((i) => i.severity === "error"), "ConfigError without an error");
    verdict = issues.some((i) => i.message.startsWith("YAML syntax"))
      ? "ConfigError (YAML syntax)"
      : "ConfigError";
  }
  for (const issue of issues) checkIssue(issue, sources);
  if (issues.some((i) => SMELLS.test(i.message) || SMELLS.test(i.fix))) {
    verdict += ", message says undefined/NaN/[object";
  }
  return verdict;
}

function configCase(sources: ConfigSource[]): FuzzCase {
  return {
    run() {
      const outcome = parseSources(sources);
      return () => checkOutcome(sources, outcome);
    },
    bytes: () =>
      new TextEncoder().encode(
        // Plain YAML when it round-trips through UTF-8; JSON keeps lone surrogates.
        sources.length === 1 && sources[0].file === "fuzz.yaml" && sources[0].text.isWellFormed()
          ? sources[0].text
          : JSON.stringify(sources),
      ),
  };
}

function generateSources(rng: Rng): ConfigSource[] {
  const seeds = configSeeds();
  let text = rng.pick(seeds);
  const count = rng.chance(0.08) ? 0 : rng.chance(0.5) ? rng.int(1, 2) : rng.int(3, 10);
  // Mutations stop once a text is large: big texts are slow to parse and add little.
  for (let i = 0; i < count && text.length < 200_000; i++) text = mutateText(rng, text, seeds);
  if (rng.chance(0.12)) return splitSources(rng, text);
  return [{ file: "fuzz.yaml", text }];
}

// ---------------------------------------------------------------------------------------------
// Scaling.

function configOf(text: string): { run(): void; bytes: number } {
  const sources = [{ file: "scale.yaml", text }];
  return {
    bytes: new TextEncoder().encode(text).length,
    run() {
      try {
        parseConfigSources(sources);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
      }
    },
  };
}

/** A config with about `size` bytes of backends, each with `per` lines. */
function manyBackends(size: number, alias: boolean): string {
  let s = "version: 1\nbackends:\n";
  s += `  b0:\n    servers: ["127.0.0.1:1"]\n    connect_timeout: &t 3s\n`;
  for (let i = 1; s.length < size - 120; i++) {
    s += `  b${i}:\n    servers: ["127.0.0.1:${1 + (i % 60000)}"]\n    connect_timeout: ${
      alias ? "*t" : "3s"
    }\n`;
  }
  return s + `listeners:\n  l:\n    bind: "127.0.0.1:0"\n    routes: [{ forward: b0 }]\n`;
}

/** Exported for the regression test: a config whose size is mostly aliases of one anchor. */
export function aliasHeavyConfig(size: number): string {
  return manyBackends(size, true);
}

const SCALING: ScalingFamily[] = [
  { name: "many backends", make: (_rng, size) => configOf(manyBackends(size, false)) },
  {
    name: "many backends sharing an anchor",
    make: (_rng, size) => configOf(aliasHeavyConfig(size)),
  },
  {
    name: "one long value",
    make: (rng, size) =>
      configOf(`version: 1\nlog:\n  level: ${longString(rng, size)}\nlisteners: {}\n`),
  },
  {
    name: "deep flow nesting",
    make: (_rng, size) =>
      configOf(`version: 1\nlog: ${"{a: ".repeat(size / 4)}1${"}".repeat(size / 4)}\n`),
  },
  {
    // yaml's error recovery is slower here, and grows a little faster than the input.
    name: "deep flow nesting after a mis-indented block",
    make: (_rng, size) =>
      configOf(
        `\n  grafana:\nbackends:\n      ca: x\n    server_name: y\n  tls: ${
          "[{a: ".repeat(size / 7)
        }1${"}]".repeat(size / 7)}\n`,
      ),
  },
  {
    name: "stray closing braces",
    make: (_rng, size) => configOf(`version: 1\nlog: ${"}".repeat(size)}\n`),
  },
  {
    name: "one long unknown key",
    // An explicit key (`? key`): implicit keys are refused by YAML past 1024 characters.
    make: (_rng, size) => configOf(`version: 1\n? ${"k".repeat(size)}\n: 1\nlisteners: {}\n`),
  },
];

/** The `config` target. */
export const configTarget: FuzzTarget = {
  name: "config",
  summary: "parseConfig / parseConfigSources on mutated YAML: a config or a ConfigError, never " +
    "anything else; every issue has a message, a fix, and a position inside the text",
  share: 0.02,
  maxMs: 100,
  maxMsPerKiB: 20,
  setup() {
    configSeeds();
  },
  generate: (rng) => configCase(generateSources(rng)),
  replay(file) {
    const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(file);
    if (text.startsWith('[{"file":')) {
      const sources: ConfigSource[] = JSON.parse(text);
      return configCase(sources);
    }
    return configCase([{ file: "fuzz.yaml", text }]);
  },
  scaling: SCALING,
};
