/**
 * Reloads under load (scenario 6 of docs/reliability.md): 20 reloads while wrk keeps 10
 * keep-alive HTTPS connections busy on an edge route, another client opens a new TLS connection
 * per request, and four long TCP streams carry data both ways through a forward route. No
 * request fails and no stream loses a byte. reload_test.ts covers reloads with a download, an
 * SSH session and a WebSocket open, and SIGHUP and watch_config through the CLI.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures } from "./_helpers/reliability_kit.ts";
import { runReload, SHORT } from "./_helpers/reliability_reload.ts";

Deno.test("20 reloads under HTTPS load and long TCP streams lose no request and no byte", async () => {
  const result = await runReload(SHORT);
  printFigures(result);
  deepEqual(result.problems, []);
});
