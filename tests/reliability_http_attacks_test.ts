/**
 * Hostile HTTP/1.1 over a TLS edge route (scenario 5 of docs/reliability.md): smuggling with
 * Content-Length and Transfer-Encoding, obfuscated Transfer-Encoding, header floods, oversized
 * heads, absolute-form targets against Host, a missing Host, forged X-Forwarded-For, requests
 * hidden in bodies. The backend records the exact bytes it receives, and for each input they are
 * either nothing or exactly the unambiguous request edgemux should write. CL.TE, TE.CL and
 * CL.CL with a Deno.serve backend are also in edge_timeouts_test.ts; the parser's own cases in
 * proxy/http/wire/head_test.ts.
 */

import { deepEqual } from "node:assert/strict";
import { printFigures } from "./_helpers/reliability_kit.ts";
import {
  type AttackGroup,
  attacks,
  runHttpAttacks,
  SHORT,
} from "./_helpers/reliability_http_attacks.ts";

const GROUPS: [AttackGroup, string][] = [
  ["framing", "Content-Length and Transfer-Encoding, plain and obfuscated"],
  ["size", "header floods and oversized heads"],
  ["host", "Host and absolute-form targets"],
  ["forwarding", "forwarding headers from an untrusted client"],
  ["hidden", "requests hidden in bodies, broken chunked bodies, bare LF and NUL"],
];

Deno.test("hostile HTTP/1.1 never reaches the backend as an ambiguous request", async (t) => {
  const result = await runHttpAttacks(SHORT);
  printFigures(result);
  const all = attacks();
  const named = (p: string) => all.find((a) => p.startsWith(`${a.name}:`));
  for (const [group, title] of GROUPS) {
    await t.step(title, () => {
      deepEqual(result.problems.filter((p) => named(p)?.group === group), []);
    });
  }
  await t.step("with nothing left open and nothing unhandled", () => {
    deepEqual(result.problems.filter((p) => named(p) === undefined), []);
  });
});
