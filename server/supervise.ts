/**
 * `workers: N`: a supervisor process that starts N workers (each one ./serve.ts in a process of
 * its own, with the permissions it needs), serves the admin listener over them, passes reloads
 * and stops on, and restarts a worker that dies (./workers.ts). Once the workers are up it lives
 * as ./lifecycle.ts says; what is its own is how a reload and a stop reach the workers.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { PreparedConfig } from "../mod.ts";
import { LIBC_PATHS } from "../proxy/_deno_internals.ts";
import { log } from "../proxy/observe/log.ts";
import { serveUntilStopped } from "./lifecycle.ts";
import { issuesText, loadPrepared, type RunFlags } from "./process.ts";
import type { Notifier } from "./sd_notify.ts";
import type { Exit } from "./signals.ts";
import { Supervisor, WORKER_ENV, type WorkerCommand } from "./workers.ts";

/**
 * Supervises the workers until the first stop signal; returns the exit code (0 stopped, 3 the
 * workers or the admin listener could not start). `exit` ends the process when a second stop
 * signal's grace runs out.
 */
export async function supervise(
  prepared: PreparedConfig,
  flags: RunFlags,
  notifier: Notifier,
  exit: Exit,
): Promise<number> {
  const sup = new Supervisor(prepared.config.workers, workerCommand(flags, prepared));
  try {
    await sup.start();
  } catch (e) {
    log.error("edgemux could not start its workers", { error: issuesText(e) });
    await sup.stop("SIGKILL");
    return 3;
  }
  return await serveUntilStopped(prepared, flags, notifier, exit, {
    admin: true,
    metrics: () => sup.metrics(),
    status: async () => (await sup.status()) ?? Promise.reject(new Error("no worker answered")),
    ready: () => sup.ready,
    async reload(_current, started) {
      // Check the config here first, so a bad one is reported once rather than by each worker.
      const next = await loadPrepared(flags.path);
      const failure = await sup.reload();
      // One reload of the service, counted once (the supervisor's, not each worker's).
      sup.service.reload(failure, performance.now() - started);
      if (failure !== null) {
        log.error("a worker could not reload; it keeps its config", { error: failure });
      } else log.info("config reloaded", { workers: sup.count });
      return next;
    },
    reloaded: () => Promise.resolve(),
    reloadFailed(error, started) {
      sup.service.reload(error, performance.now() - started);
      return Promise.resolve();
    },
    startedFields: (admin) => ({ workers: sup.pids, admin }),
    announce: () => Promise.resolve(),
    readyStatus: `serving with ${sup.count} workers`,
    stoppingFields: () => ({ workers: sup.pids }),
    hurry: () => sup.signal("SIGTERM"),
    stop: () => sup.stop("SIGTERM"),
    abort: () => sup.stop(),
  });
}

/**
 * How to start a worker: the same program with the same config. A compiled edgemux is its own
 * runtime with its permissions baked in. Under `deno run`, Deno does not say which flags it was
 * started with, so each permission is asked about: granted in full, it is passed in full;
 * otherwise it is passed for exactly the things edgemux uses that were granted.
 */
function workerCommand(flags: RunFlags, prepared: PreparedConfig): WorkerCommand {
  const cli = ["run", "-c", flags.path];
  if (flags.level) cli.push("--log-level", flags.level);
  if (flags.format) cli.push("--log-format", flags.format);
  const exec = Deno.execPath();
  if (!/(^|\/)deno$/.test(exec)) return { command: exec, args: cli };
  const granted = (d: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(d).state === "granted";
  const scoped = (
    name: "read" | "write" | "env" | "run" | "ffi",
    items: string[],
    descriptor: (item: string) => Deno.PermissionDescriptor,
  ): string[] => {
    if (granted({ name } as Deno.PermissionDescriptor)) return [`--allow-${name}`];
    const allowed = [...new Set(items)].filter((item) => granted(descriptor(item)));
    return allowed.length ? [`--allow-${name}=${allowed.join(",")}`] : [];
  };
  const config = prepared.config;
  const readPaths = [
    flags.path,
    ...config.files,
    ...prepared.watched,
    ...[...config.backends.values()].flatMap((b) =>
      [b.tls?.caFile, b.tls?.certFile, b.tls?.keyFile].filter((p): p is string => !!p)
    ),
    config.certificates?.development?.directory ?? "",
    config.certificates?.acme?.stateDirectory ?? "",
    config.certificates?.acme?.caFile ?? "",
    "/proc/uptime",
  ].filter(Boolean);
  const writePaths = [
    config.certificates?.development?.directory ?? "",
    // ACME: certificates, challenges and the locks the workers share.
    config.certificates?.acme?.stateDirectory ?? "",
    Deno.env.get("NOTIFY_SOCKET") ?? "",
  ]
    .filter(Boolean);
  const perms = [
    ...(granted({ name: "net" }) ? ["--allow-net"] : []),
    ...scoped("read", readPaths, (path) => ({ name: "read", path })),
    ...scoped("write", writePaths, (path) => ({ name: "write", path })),
    ...scoped("env", [WORKER_ENV, "NOTIFY_SOCKET", "JOURNAL_STREAM"], (variable) => ({
      name: "env",
      variable,
    })),
    ...scoped("run", [exec], (command) => ({ name: "run", command })),
    ...scoped("ffi", LIBC_PATHS, (path) => ({ name: "ffi", path })),
    ...(granted({ name: "sys" }) ? ["--allow-sys"] : []),
  ];
  const configFile = fileURLToPath(new URL("../deno.json", import.meta.url));
  const denoConfig = existsSync(configFile) ? ["--config", configFile] : [];
  return {
    command: exec,
    args: ["run", ...perms, "--unstable-net", ...denoConfig, Deno.mainModule, ...cli],
  };
}
