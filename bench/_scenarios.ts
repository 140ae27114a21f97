/**
 * Every scenario of `deno task bench`, in the order a full run takes them. The scenarios are
 * in bench/scenarios/: throughput.ts (load tools against each target), memory.ts (held
 * connections) and micro.ts (`deno bench`); what they share is in ./_types.ts.
 *
 * @module
 */

import type { Scenario } from "./_types.ts";
import {
  edge,
  multicore,
  passthrough,
  redirect,
  reencrypt,
  tcpForward,
} from "./scenarios/throughput.ts";
import { memory } from "./scenarios/memory.ts";
import { micro } from "./scenarios/micro.ts";

export const SCENARIOS: readonly Scenario[] = [
  tcpForward,
  passthrough,
  edge,
  reencrypt,
  redirect,
  multicore,
  memory,
  micro,
];
