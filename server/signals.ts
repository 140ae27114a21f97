/**
 * The process's signals: SIGTERM and SIGINT stop it (a second one hurries the stop), SIGHUP and
 * a changed config file reload it, and a stray error or rejection is logged instead of ending it.
 *
 * @module
 */

import type { Config } from "../mod.ts";
import { FileWatcher } from "../proxy/tls/certs/watch.ts";
import { closeLogging, log } from "../proxy/observe/log.ts";

/** Ends the process with an exit code; only main.ts holds the real one (`Deno.exit`). */
export type Exit = (code: number) => void;

/** Keeps a stray rejection or uncaught error from taking the process down; logs it instead. */
export function containCrashes(): void {
  // Containment (docs/deno-runtime.md §8): a stray rejection must never take the proxy down.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled rejection", { error: String(e.reason) });
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    log.error("uncaught error", { error: String(e.error ?? e.message) });
  });
}

/**
 * How long a second stop signal waits for the stop it hurries before the process exits anyway.
 * The stop closes every connection at once, but some step of it may wait on something stuck
 * (e.g. after running out of file descriptors); the operator asked twice, so this is the bound.
 */
export const SECOND_SIGNAL_GRACE = 1_000;
/** The exit status when the second stop signal's grace ran out (docs/install.md). */
export const EXIT_FORCED = 4;

/**
 * Resolves with the first stop signal; a later one calls `again` (which should stop at once)
 * and, if the process is still there {@link SECOND_SIGNAL_GRACE} ms later, exits with
 * {@link EXIT_FORCED}.
 */
export function stopSignal(again: () => void, exit: Exit): Promise<Deno.Signal> {
  const first = Promise.withResolvers<Deno.Signal>();
  let seen = false;
  let forcing = false;
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(s, () => {
      if (!seen) {
        seen = true;
        first.resolve(s);
        return;
      }
      log.warn("second stop signal: closing every connection now", { signal: s });
      again();
      if (forcing) return;
      forcing = true;
      const timer = setTimeout(() => {
        log.error("not stopped within the grace of the second signal; exiting now", {
          grace_ms: SECOND_SIGNAL_GRACE,
        });
        // The log is written in batches: give it a moment, never more.
        const flushed = Promise.race([
          closeLogging(),
          new Promise((r) => setTimeout(r, 200)),
        ]);
        flushed.finally(() => exit(EXIT_FORCED));
      }, SECOND_SIGNAL_GRACE);
      // The timer must not keep a process that finished stopping alive.
      Deno.unrefTimer(timer);
    });
  }
  return first.promise;
}

/**
 * Runs `reload` on SIGHUP and, with `watch_config`, when a config file changes. Reloads never
 * overlap: a request during one runs once after it.
 */
export function onReloadRequest(
  config: () => Config,
  path: string,
  reload: () => Promise<void>,
): () => void {
  let running: Promise<void> | null = null;
  let again = false;
  const trigger = () => {
    if (running !== null) {
      again = true;
      return;
    }
    running = reload().finally(() => {
      running = null;
      if (again) {
        again = false;
        trigger();
      }
    });
  };
  Deno.addSignalListener("SIGHUP", trigger);
  let watcher: FileWatcher | null = null;
  if (config().watchConfig) {
    // The files of the config now running: a reload may have added or dropped some.
    const paths = () => [path, ...config().files];
    watcher = new FileWatcher(paths, 1000, () => {
      log.info("config changed on disk; reloading", { config: path });
      trigger();
    });
    watcher.start();
  }
  return () => void watcher?.stop();
}
