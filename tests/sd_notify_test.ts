/**
 * systemd's readiness protocol: `edgemux run` started with `NOTIFY_SOCKET` pointing at a unix
 * datagram socket the test owns (as systemd's would be) says `READY=1` once it serves,
 * `RELOADING=1` then `READY=1` around each SIGHUP (a failed reload too), and `STOPPING=1` on
 * SIGTERM; with workers, only the supervisor speaks, once.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { startTcpBackend } from "./_helpers/backends.ts";
import { echoThrough } from "./_helpers/edgemux.ts";
import {
  echoForwardConfig,
  type EdgemuxCli,
  replaceFile,
  startEdgemuxCliOnFreePort,
} from "./_helpers/edgemux_cli.ts";
import { run } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const decoder = new TextDecoder();

/** One sd_notify datagram: its `KEY=value` lines, in order. */
type Notification = [string, string][];

/** A NOTIFY_SOCKET: a bound unix datagram socket and the messages it received. */
interface NotifySocket extends AsyncDisposable {
  readonly path: string;
  /** The next message, or a rejection after `timeoutMs`. */
  next(timeoutMs?: number): Promise<Notification>;
  /** Messages received and not yet taken by `next`. */
  readonly queued: Notification[];
}

function parseNotification(text: string): Notification {
  return text.split("\n").filter((l) => l !== "").map((line) => {
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not a KEY=value line in a notification: ${JSON.stringify(text)}`);
    return [line.slice(0, eq), line.slice(eq + 1)];
  });
}

function openNotifySocket(path: string): NotifySocket {
  // "unixpacket" is Deno's name for a unix datagram socket (SOCK_DGRAM), the kind systemd makes.
  const socket = Deno.listenDatagram({ transport: "unixpacket", path });
  const queued: Notification[] = [];
  const waiting: ((n: Notification) => void)[] = [];
  const loop = (async () => {
    try {
      for (;;) {
        const [data] = await socket.receive();
        const n = parseNotification(decoder.decode(data));
        const w = waiting.shift();
        if (w) w(n);
        else queued.push(n);
      }
    } catch {
      // Closed at the end of the test.
    }
  })();
  return {
    path,
    queued,
    next(timeoutMs = 10_000) {
      const ready = queued.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const take = (n: Notification) => {
          clearTimeout(timer);
          resolve(n);
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(take), 1);
          reject(new Error(`no sd_notify message within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.push(take);
      });
    },
    async [Symbol.asyncDispose]() {
      socket.close();
      await loop;
    },
  };
}

/** The message's keys in order, with the values of keys whose value the test knows. */
function shape(n: Notification, known: Record<string, string>): string[] {
  return n.map(([k, v]) => k in known ? `${k}=${known[k]}` : `${k}=${v === "" ? "" : "…"}`);
}

/** CLOCK_MONOTONIC in microseconds, as systemd reads it (Deno has no such clock). */
async function monotonicMicros(): Promise<number> {
  const python = requireTool("python3", "python3");
  const r = await run(python, ["-c", "import time; print(time.clock_gettime_ns(1) // 1000)"]);
  equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

/** Starts the CLI on a fixed port, trying again if another process took the port. */
async function startOnFreePort(
  dir: string,
  echoPort: number,
  notify: string,
  top = "",
): Promise<{ cli: EdgemuxCli; port: number; file: string }> {
  const file = `${dir}/edgemux.yaml`;
  const { cli, port } = await startEdgemuxCliOnFreePort(
    file,
    (tcpPort) => echoForwardConfig(echoPort, { tcpPort, top }),
    { env: { NOTIFY_SOCKET: notify } },
  );
  return { cli, port, file };
}

Deno.test("edgemux run says READY=1 once serving, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-notify-");
  await using notify = openNotifySocket(`${dir.path}/notify.sock`);
  const { cli: c, port, file } = await startOnFreePort(dir.path, echo.port, notify.path);
  await using cli = c;

  const ready = await notify.next();
  deepEqual(shape(ready, { READY: "1", STATUS: "serving", MAINPID: String(cli.pid) }), [
    "READY=1",
    "STATUS=serving",
    `MAINPID=${cli.pid}`,
  ]);
  // Ready means ready: the listener answers by then.
  equal(await echoThrough(port, "ready means serving"), "ready means serving");

  // A reload that works.
  await replaceFile(file, echoForwardConfig(echo.port, { tcpPort: port, top: "# reloaded\n" }));
  const before = await monotonicMicros();
  cli.signal("SIGHUP");
  const reloading = await notify.next();
  const after = await monotonicMicros();
  deepEqual(shape(reloading, { RELOADING: "1", STATUS: "reloading" }), [
    "RELOADING=1",
    "MONOTONIC_USEC=…",
    "STATUS=reloading",
  ]);
  // systemd orders the reload by this stamp, taken on its own CLOCK_MONOTONIC.
  const stamp = Number(Object.fromEntries(reloading).MONOTONIC_USEC);
  ok(
    stamp >= before - 1_000_000 && stamp <= after + 1_000_000,
    `MONOTONIC_USEC=${stamp}, CLOCK_MONOTONIC was ${before}…${after}`,
  );
  const readyAgain = await notify.next();
  deepEqual(readyAgain, ready);
  await cli.waitForOutput(/level=info msg="config reloaded"/, 5000);

  // A reload that fails still ends with READY=1: the old config serves on.
  await replaceFile(file, "version: 1\nlisteners: 3\n");
  cli.signal("SIGHUP");
  deepEqual(
    shape(await notify.next(), { RELOADING: "1", STATUS: "reloading" }),
    ["RELOADING=1", "MONOTONIC_USEC=…", "STATUS=reloading"],
  );
  deepEqual(await notify.next(), ready);
  await cli.waitForOutput("reload failed; the running config stays", 5000);
  equal(await echoThrough(port, "still serving"), "still serving");

  cli.signal("SIGTERM");
  deepEqual(await notify.next(), [["STOPPING", "1"], ["STATUS", "stopping"]]);
  const exit = await cli.exited;
  equal(exit.code, 0, cli.output());
  // Nothing after STOPPING=1.
  await new Promise((r) => setTimeout(r, 100));
  deepEqual(notify.queued, []);
});

Deno.test("with workers, only the supervisor notifies, once, with its own pid", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-notify-workers-");
  await using notify = openNotifySocket(`${dir.path}/notify.sock`);
  const { cli: c, port } = await startOnFreePort(
    dir.path,
    echo.port,
    notify.path,
    "workers: 2\n",
  );
  await using cli = c;
  deepEqual(await notify.next(), [
    ["READY", "1"],
    ["STATUS", "serving with 2 workers"],
    ["MAINPID", String(cli.pid)],
  ]);
  equal(await echoThrough(port, "through a worker"), "through a worker");

  cli.signal("SIGHUP");
  deepEqual(shape(await notify.next(), { RELOADING: "1" }), [
    "RELOADING=1",
    "MONOTONIC_USEC=…",
    "STATUS=…",
  ]);
  deepEqual(shape(await notify.next(), { READY: "1" }), ["READY=1", "STATUS=…", "MAINPID=…"]);
  await cli.waitForOutput(/level=info msg="config reloaded" workers=2/, 10_000);

  cli.signal("SIGTERM");
  deepEqual(await notify.next(), [["STOPPING", "1"], ["STATUS", "stopping"]]);
  const exit = await cli.exited;
  equal(exit.code, 0, cli.output());
  await new Promise((r) => setTimeout(r, 100));
  deepEqual(notify.queued, [], "a worker sent a notification of its own");
});
