/**
 * Connection flood (scenario 2 of docs/reliability.md): 2,000 short connections of seven kinds
 * (echo exchanges, closes right after connect, half hellos, resets, half-open clients, TLS
 * passthrough and edge handshakes), 50 at a time, in four rounds. Afterwards edgemux has no
 * active connection, its descriptors are back at the baseline, every connection has one access
 * record, and the last rounds do not grow its memory like a leak would.
 * `deno run -A reliability/run.ts` runs 20,000.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures } from "./_helpers/reliability_kit.ts";
import { runFlood, SHORT } from "./_helpers/reliability_flood.ts";

Deno.test("2,000 short connections of mixed kinds leave edgemux as they found it", async () => {
  const result = await runFlood(SHORT);
  printFigures(result);
  deepEqual(result.problems, []);
});
