/**
 * Slow clients (scenario 1 of docs/reliability.md): connections that send part of a
 * ClientHello, part of an HTTP head (on a plain-HTTP listener, and after a TLS handshake on an
 * edge route) or nothing, and stall. A normal client is still served promptly, every stalled
 * connection is closed at its deadline, and edgemux's descriptors return to their baseline.
 * `deno run -A reliability/run.ts` runs the same scenario with 2,000 connections. Single stalled
 * hellos are in malformed_test.ts, and the 408 itself in edge_timeouts_test.ts.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures } from "./_helpers/reliability_kit.ts";
import { runSlowClients, SHORT } from "./_helpers/reliability_slow_clients.ts";

Deno.test("300 stalled clients are closed at their deadlines while a normal client is served", async () => {
  const result = await runSlowClients(SHORT);
  printFigures(result);
  deepEqual(result.problems, []);
});
