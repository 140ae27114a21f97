/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Runs one target's inputs off the main thread, so that `run.ts` can stop it when a single
 * input hangs. Receives a {@linkcode WorkerRequest}, posts back a TargetReport.
 *
 * @module
 */

import { runTarget } from "./harness.ts";
import { targetNamed } from "./targets/mod.ts";

/** What run.ts asks a worker to do. */
export interface WorkerRequest {
  target: string;
  seed: number;
  count: number;
  start: number;
  scaling: boolean;
  /** Two Int32 slots: the index being run, and 1 while a call under test runs. */
  progress: SharedArrayBuffer;
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const req = event.data;
  const report = runTarget(targetNamed(req.target), {
    seed: req.seed,
    count: req.count,
    start: req.start,
    scaling: req.scaling,
    progress: new Int32Array(req.progress),
  });
  self.postMessage(report);
};
