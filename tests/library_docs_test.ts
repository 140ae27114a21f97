/**
 * The library face is fully documented: `deno doc --lint mod.ts` finds no exported symbol or
 * field without a doc comment and no public type that refers to a type `mod.ts` does not export.
 * The examples in those comments run as tests themselves (`deno task test` passes `--doc`).
 *
 * @module
 */

import { equal, match } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { run } from "./_helpers/process.ts";
import { describe, ROOT } from "./_helpers/release.ts";

Deno.test("deno doc --lint mod.ts reports nothing", async () => {
  const r = await run(Deno.execPath(), ["doc", "--lint", "mod.ts"], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs: 120_000,
  });
  equal(r.code, 0, describe(r));
  equal(r.stdout + r.stderr.replace(/^Checked \d+ files?\n$/m, ""), "", describe(r));
});

Deno.test("deno task test runs the doc examples", () => {
  match(denoJson.tasks.test, /^deno test .*--doc\b/);
});
