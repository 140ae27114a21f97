/**
 * The microbenchmarks: `deno bench` on the `_bench.ts` files beside edgemux's hot code.
 *
 * @module
 */

import { runCommand } from "../_proc.ts";
import { REPO_ROOT } from "../_setup.ts";
import { BenchError, parseDenoBench } from "../_tools.ts";
import type { Scenario } from "../_types.ts";

/** The `_bench.ts` files beside edgemux's hot code. */
export const MICRO_FILES = [
  "proxy/sniff/client_hello_bench.ts",
  "routing/http_router_bench.ts",
  "proxy/http/wire/head_bench.ts",
];

/** `deno bench` on the microbenchmarks beside the hot code. */
export const micro: Scenario = {
  name: "micro",
  title: "Microbenchmarks (deno bench)",
  async run(ctx) {
    const argv = [Deno.execPath(), "bench", "--json", ...MICRO_FILES];
    const out = await runCommand(argv, { timeoutMs: 300_000, cwd: REPO_ROOT });
    if (out.code !== 0) {
      throw new BenchError(`deno bench exited with ${out.code}:\n${out.stderr}\n${out.stdout}`);
    }
    ctx.results.micro.push(...parseDenoBench(out.stdout, REPO_ROOT));
  },
};
