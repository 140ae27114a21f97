/**
 * The life of a serving process once it has started, the same whether it serves the listeners
 * itself (./serve.ts) or supervises workers that do (./supervise.ts): the admin listener, reloads
 * on request (and the admin listener following them), readiness for systemd, and the stop on the
 * first stop signal. Each caller says only what differs, in a {@link Served}.
 *
 * @module
 */

import type { Config, PreparedConfig } from "../mod.ts";
import { formatHostPort } from "../config/address.ts";
import { log } from "../proxy/observe/log.ts";
import { adminAccess, type AdminServer, type AdminSource, startAdmin } from "./admin.ts";
import { issuesText, type RunFlags, VERSION } from "./process.ts";
import type { Notifier } from "./sd_notify.ts";
import { type Exit, onReloadRequest, stopSignal } from "./signals.ts";

/** What one serving process and a supervisor do differently. */
export interface Served {
  /** Whether this process runs the admin listener (a worker leaves it to its supervisor). */
  readonly admin: boolean;
  /** The admin listener's metrics. */
  metrics: AdminSource["metrics"];
  /** The admin listener's status report. */
  status: AdminSource["status"];
  /** Whether it is ready, besides not stopping (a supervisor: its workers are). */
  ready(): boolean;
  /**
   * Loads the config at the run flags' path and makes it the one running instead of `current`;
   * rejects, with nothing changed, when the running config stays.
   */
  reload(current: Config, started: number): Promise<PreparedConfig>;
  /** After a reload from `before` to `after`, once the admin listener has followed it. */
  reloaded(before: Config, after: Config, started: number): Promise<void>;
  /** After a failed reload has been logged. */
  reloadFailed(error: string, started: number): Promise<void>;
  /** The log line of the start: what it says besides the version, config and pid. */
  startedFields(admin: string | null): Record<string, unknown>;
  /** Once started and logged, before systemd hears of it. */
  announce(): Promise<void>;
  /** The status systemd shows while serving. */
  readonly readyStatus: string;
  /** The log line of the stop: what it says besides the signal. */
  stoppingFields(current: Config): Record<string, unknown>;
  /** A second stop signal: close everything now. */
  hurry(): void;
  /** Stops gracefully. */
  stop(): Promise<void>;
  /** Stops at once, when the admin listener could not start. */
  abort(): Promise<void>;
}

/**
 * Serves until the first stop signal; returns the exit code (0 stopped, 3 the admin listener
 * could not start). `exit` ends the process when a second stop signal's grace runs out.
 */
export async function serveUntilStopped(
  prepared: PreparedConfig,
  flags: RunFlags,
  notifier: Notifier,
  exit: Exit,
  served: Served,
): Promise<number> {
  let stopping = false;
  const source: AdminSource = {
    metrics: served.metrics,
    status: served.status,
    ready: () => !stopping && served.ready(),
  };
  let admin: AdminServer | null = null;
  if (served.admin && prepared.config.admin !== null) {
    try {
      admin = startAdmin(
        prepared.config.admin.bind,
        source,
        adminAccess(prepared.config.admin, prepared.adminToken),
      );
    } catch (e) {
      log.error(e instanceof Error ? e.message : String(e), {});
      await served.abort();
      return 3;
    }
  }

  let current = prepared.config;
  const stopWatching = onReloadRequest(() => current, flags.path, async () => {
    await notifier.reloading();
    const started = performance.now();
    try {
      const next = await served.reload(current, started);
      if (served.admin) admin = await moveAdmin(admin, current, next, source);
      const before = current;
      current = next.config;
      await served.reloaded(before, current, started);
    } catch (e) {
      log.error("reload failed; the running config stays", { error: issuesText(e) });
      await served.reloadFailed(issuesText(e), started);
    }
    await notifier.ready("serving");
  });

  log.info("edgemux started", {
    version: VERSION,
    config: flags.path,
    pid: Deno.pid,
    ...served.startedFields(
      admin ? formatHostPort({ host: admin.addr.hostname, port: admin.addr.port }) : null,
    ),
  });
  await served.announce();
  await notifier.ready(served.readyStatus);

  const signal = await stopSignal(() => served.hurry(), exit);
  stopping = true;
  stopWatching();
  await notifier.stopping();
  log.info("stopping", { signal, ...served.stoppingFields(current) });
  await served.stop();
  await admin?.close();
  log.info("stopped", {});
  return 0;
}

/**
 * Replaces the admin listener when its address changed in a reload, and applies its new access
 * rules (names, token) either way.
 */
async function moveAdmin(
  admin: AdminServer | null,
  before: Config,
  prepared: PreparedConfig,
  source: AdminSource,
): Promise<AdminServer | null> {
  const after = prepared.config;
  const was = before.admin ? formatHostPort(before.admin.bind) : null;
  const now = after.admin ? formatHostPort(after.admin.bind) : null;
  const access = after.admin ? adminAccess(after.admin, prepared.adminToken) : null;
  if (was === now) {
    if (access !== null) admin?.update(access);
    return admin;
  }
  await admin?.close();
  if (after.admin === null || access === null) return null;
  try {
    return startAdmin(after.admin.bind, source, access);
  } catch (e) {
    log.error("the admin listener could not move to its new address", {
      error: e instanceof Error ? e.message : String(e),
    });
    return null;
  }
}
