/**
 * Backend faults (scenario 3 of docs/reliability.md) through a TCP forward route, a passthrough
 * route and an edge route: a backend that refuses, one that never answers, one that resets in
 * the middle of a response, one that closes in the middle of an upload, and clients that abort
 * an upload or a download. Each gets the right status or a close, an access or request record
 * with a meaningful `end`, and leaves no socket behind. Refused and silent backends over HTTP
 * are also in edge_timeouts_test.ts; balancing and retries in backends_test.ts.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures, type ScenarioResult } from "./_helpers/reliability_kit.ts";
import { runBackendFaults, SHORT } from "./_helpers/reliability_backend_faults.ts";

Deno.test("faulty backends and clients that give up are each answered, logged and cleaned up", async (t) => {
  const result: ScenarioResult = await runBackendFaults(SHORT);
  printFigures(result);
  const about = (prefix: string) => result.problems.filter((p) => p.startsWith(prefix));
  await t.step("through a TCP forward route", () => {
    deepEqual(about("tcp "), []);
  });
  await t.step("through a passthrough route", () => {
    deepEqual(about("passthrough "), []);
  });
  await t.step("through an edge route (HTTP/1.1)", () => {
    deepEqual(about("edge "), []);
  });
  await t.step("with an edge request answered after the listener's idle_timeout", () => {
    deepEqual(about("edge, "), []);
  });
  await t.step("with nothing left open and nothing unhandled", () => {
    deepEqual(
      result.problems.filter((p) => !/^(tcp|passthrough|edge),? /.test(p)),
      [],
    );
  });
});
