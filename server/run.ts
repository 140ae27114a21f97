/**
 * `edgemux run` once its config has loaded: logging, the warnings, crash containment and
 * systemd's notifications, then one serving process (./serve.ts) or a supervisor with workers
 * (./supervise.ts). Returns the exit code; only main.ts ends the process.
 *
 * @module
 */

import type { PreparedConfig } from "../mod.ts";
import { formatPosition } from "../config/errors.ts";
import { closeLogging, log } from "../proxy/observe/log.ts";
import { type RunFlags, setupLogging } from "./process.ts";
import { Notifier } from "./sd_notify.ts";
import { serve } from "./serve.ts";
import { containCrashes, type Exit } from "./signals.ts";
import { supervise } from "./supervise.ts";
import { WORKER_ENV } from "./workers.ts";

const PINNED_DENO = "2.9.6";

/** Whether this process is a worker started by a supervisor (./workers.ts). */
export function isWorker(): boolean {
  return Deno.env.get(WORKER_ENV) !== undefined;
}

/**
 * Serves `prepared` until a stop signal and returns the exit code (0 stopped, 3 could not bind
 * or start). `exit` ends the process when a second stop signal's grace runs out.
 */
export async function runServer(
  prepared: PreparedConfig,
  flags: RunFlags,
  worker: boolean,
  exit: Exit,
): Promise<number> {
  await setupLogging(prepared.config, flags);
  if (Deno.version.deno !== PINNED_DENO && !worker) {
    log.warn("edgemux is tested on one Deno version only", {
      expected: PINNED_DENO,
      running: Deno.version.deno,
    });
  }
  if (!worker) {
    for (const w of prepared.warnings) {
      log.warn(w.message, {
        at: w.position ? formatPosition(w.position) : null,
        path: w.path,
        fix: w.fix,
      });
    }
  }
  containCrashes();
  const notifier = new Notifier(worker ? undefined : Deno.env.get("NOTIFY_SOCKET"));
  try {
    if (!worker && prepared.config.workers > 1) {
      return await supervise(prepared, flags, notifier, exit);
    }
    return await serve(prepared, flags, notifier, worker, exit);
  } finally {
    notifier.close();
    await closeLogging();
  }
}
