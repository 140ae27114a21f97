/**
 * The short version of `deno task fuzz`: the same generators and checks with a fixed seed and a
 * few thousand inputs per target, plus regression tests for what the fuzzer has found.
 *
 * A failure here names the seed and index; `deno task fuzz --seed S --target T --index I`
 * re-runs that one input and prints its bytes and the stack.
 */

import assert from "node:assert/strict";
import { failureSignature, type FuzzTarget, measureScaling, runTarget } from "../fuzz/harness.ts";
import { Rng } from "../fuzz/rng.ts";
import { targetNamed, TARGETS } from "../fuzz/targets/mod.ts";
import { aliasHeavyConfig, ALL_KEYS, checkSources, configSeeds } from "../fuzz/targets/config.ts";
import { CONFIG_KEYS, parseConfig } from "../config/parse.ts";
import { ConfigError } from "../config/errors.ts";

const SEED = 20261126;

/** Inputs per target: ~20,000, except YAML parsing, which costs a few ms an input. */
const COUNTS: Record<string, number> = {
  client_hello: 20_000,
  classify: 20_000,
  config: 1_000,
  http_router: 20_000,
  normalize_path: 20_000,
  http1_head: 20_000,
  chunked: 20_000,
};

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes.subarray(0, 2048)) s += String.fromCharCode(b);
  return btoa(s) + (bytes.length > 2048 ? `… (${bytes.length} bytes)` : "");
}

function assertNoFailures(target: FuzzTarget, count: number): void {
  const report = runTarget(target, { seed: SEED, count, scaling: false });
  assert.equal(report.inputs, count);
  if (report.failures.length === 0) return;
  const lines = Object.entries(report.failureCounts).map(([sig, n]) => {
    const first = report.failures.find((f) => failureSignature(f) === sig)!;
    return `${n}x ${sig}\n    first: --seed ${SEED} --target ${target.name} --index ${first.index}` +
      `\n    input (base64): ${base64(first.bytes)}\n    ${
        first.stack.split("\n").slice(0, 4).join("\n    ")
      }`;
  });
  assert.fail(`${target.name}: ${report.failures.length} kept failure(s):\n${lines.join("\n")}`);
}

const SENTENCES: Record<string, string> = {
  client_hello: "parseClientHello() returns one of its four kinds, with a consistent hello, for " +
    "20,000 mutated and re-fragmented hellos",
  classify: "classify() never changes a final verdict as 20,000 buffers grow byte by byte",
  config: "parseConfig() returns a config or throws a ConfigError whose issues point inside the " +
    "text, for 1,000 mutated configs",
  http_router: "HttpRouter.match() agrees with explain() and the documented precedence on 20,000 " +
    "random route tables",
  normalize_path:
    "normalizePath() equals a reference (RFC 3986 plus the strict rules) in both modes and is " +
    "idempotent on 20,000 targets",
  http1_head: "parseRequestHead() and parseResponseHead() keep their framing rules on 20,000 " +
    "mutated heads",
  chunked: "ChunkedScanner.scan() gives the same answer however 20,000 mutated bodies are cut",
};

for (const target of TARGETS) {
  Deno.test(`fuzz: ${SENTENCES[target.name] ?? target.name}`, () => {
    assertNoFailures(target, COUNTS[target.name] ?? 20_000);
  });
}

Deno.test("fuzz: the binary parsers cost the same per byte at 16 KB as at 1 KB", () => {
  const slow: string[] = [];
  for (const target of TARGETS) {
    if (target.name === "config") continue; // its own test below; YAML is slow to measure
    for (const family of target.scaling) {
      const r = measureScaling(family, SEED, target.name, 512 * 1024);
      if (r.ratio > 4) slow.push(`${target.name} "${family.name}": ${r.ratio.toFixed(1)}x`);
    }
  }
  assert.deepEqual(slow, []);
});

Deno.test("fuzz: config seeds mention every key in CONFIG_KEYS", () => {
  const text = configSeeds().join("\n");
  const missing = ALL_KEYS.filter((k) => !new RegExp(`(^|[\\s{,-])${k}:`, "m").test(text));
  assert.deepEqual(missing, []);
  assert.ok(Object.keys(CONFIG_KEYS).length > 10);
});

Deno.test("fuzz: an input is rebuilt byte for byte from its seed and index", () => {
  for (const target of TARGETS) {
    target.setup();
    for (const index of [0, 1, 777]) {
      const a = target.generate(Rng.forInput(SEED, target.name, index)).bytes();
      const b = target.generate(Rng.forInput(SEED, target.name, index)).bytes();
      assert.deepEqual(a, b, `${target.name} #${index}`);
      const replayed = target.replay(a).bytes();
      assert.deepEqual(replayed, a, `${target.name} #${index} after a round trip through a file`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Regression tests for what the fuzzer found. Each fails until the bug it names is fixed.

Deno.test(
  "parseConfig() throws ConfigError, not RangeError, for 10,000 nested block sequences " +
    "(fuzz finding: yaml's CST parser overflows the stack outside its own try/catch)",
  () => {
    const text = "version: 1\nlisteners:\n  " + "- ".repeat(10_000) + "x\nlog: 1\n";
    assert.throws(() => parseConfig(text, "deep.yaml"), ConfigError);
  },
);

Deno.test(
  "parseConfig() places a YAML syntax error on the line it is on (fuzz finding: yaml's " +
    "LineCounter misses newlines inside error tokens)",
  () => {
    // The ":" of line 3 is reported at 2:14, a column line 2 ("log") does not have.
    const text = '"version: 1"\nlog\nlisteners: {}\n';
    assert.equal(checkSources([{ file: "quoted.yaml", text }]), "ConfigError (YAML syntax)");
  },
);

Deno.test(
  "parseConfig() takes time linear in the number of YAML aliases (fuzz finding: each alias " +
    "is resolved by walking the whole document)",
  () => {
    const family = targetNamed("config").scaling.find((f) => f.name.includes("anchor"))!;
    const r = measureScaling(family, SEED, "config", 256 * 1024);
    assert.ok(
      r.ratio <= 4,
      `${r.smallNsPerByte.toFixed(0)} ns/byte at ${r.smallBytes} bytes, ` +
        `${r.largeNsPerByte.toFixed(0)} ns/byte at ${r.largeBytes} bytes (${r.ratio.toFixed(1)}x)` +
        `; a ${aliasHeavyConfig(16384).split("*t").length - 1}-alias config is the input`,
    );
  },
);
