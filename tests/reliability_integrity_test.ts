/**
 * Data integrity (scenario 4 of docs/reliability.md): 64 MiB each way through a TCP forward
 * route and through a TLS passthrough route, once with the reply sent only after the client's
 * half-close and once in both directions at the same time; the SHA-256 of what each end sent
 * equals the SHA-256 of what the other received. `deno run -A reliability/run.ts` moves 1 GiB
 * each way; edge_bulk_test.ts does the same for edge and reencrypt routes.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures } from "./_helpers/reliability_kit.ts";
import { runIntegrity, SHORT } from "./_helpers/reliability_integrity.ts";

Deno.test("64 MiB each way through forward and passthrough arrive byte for byte, half-closed or not", async () => {
  const result = await runIntegrity(SHORT);
  printFigures(result);
  deepEqual(result.problems, []);
});
