/**
 * Every fuzz target, in the order a run goes through them.
 *
 * @module
 */

import type { FuzzTarget } from "../harness.ts";
import { clientHelloTarget } from "./client_hello.ts";
import { classifyTarget } from "./classify.ts";
import { configTarget } from "./config.ts";
import { chunkedTarget, http1HeadTarget } from "./http1.ts";
import { httpRouterTarget, normalizePathTarget } from "./routing.ts";

export const TARGETS: readonly FuzzTarget[] = [
  clientHelloTarget,
  classifyTarget,
  configTarget,
  httpRouterTarget,
  normalizePathTarget,
  http1HeadTarget,
  chunkedTarget,
];

/** The target called `name`, or an error listing the names. */
export function targetNamed(name: string): FuzzTarget {
  const t = TARGETS.find((t) => t.name === name);
  if (t === undefined) {
    throw new Error(
      `Cannot find fuzz target "${name}": use one of ${TARGETS.map((t) => t.name).join(", ")}`,
    );
  }
  return t;
}
