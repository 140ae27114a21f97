/**
 * Under systemd, edgemux's standard error is a stream to journald and `JOURNAL_STREAM` names it
 * (systemd.exec(5)). Each line must then start with its sd-daemon priority (`<3>` error, `<4>`
 * warning, `<6>` info, `<7>` debug; sd-daemon(3)) and carry no time of its own, so that
 * `journalctl -u edgemux -p warning` (docs/install.md) shows the warnings and errors.
 *
 * Checked two ways: by the exact bytes edgemux writes when JOURNAL_STREAM names the pipe it
 * writes to (and not when it names something else), and with a real systemd-journald, started in
 * a private mount namespace so that nothing of the machine's own /run or /var/log is touched.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { startProcess } from "./_helpers/process.ts";
import { REPO_ROOT } from "./_helpers/edgemux_cli.ts";
import { run } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const PRIORITY: Record<string, string> = { debug: "7", info: "6", warning: "4", error: "3" };

/** A config whose start logs at info and warning (the development certificate). */
function config(workers: number): string {
  return `version: 1
log: { level: debug, format: text, access: true }
shutdown_timeout: 1s
workers: ${workers}
certificates: { development: true }
backends:
  app: { servers: ["127.0.0.1:9"] }
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { sni: app.example.test, edge: app }
`;
}

/** `sh -c` text that sets JOURNAL_STREAM to its standard error's DEVICE:INODE, then execs "$@". */
const WITH_STREAM =
  'export JOURNAL_STREAM="$(stat -L -c %d:%i /proc/self/fd/2)${JOURNAL_STREAM_SUFFIX:-}"; exec "$@"';

/**
 * Runs `edgemux run` until it has started, stops it with SIGTERM and returns everything it
 * wrote. `suffix` is appended to the inode, to name a stream that is not standard error.
 */
async function runUnderStream(dir: string, workers: number, suffix = ""): Promise<string> {
  const file = `${dir}/edgemux-${workers}.yaml`;
  await Deno.writeTextFile(file, config(workers));
  const sh = requireTool("sh", "dash");
  requireTool("stat", "coreutils");
  const proc = startProcess(
    sh,
    ["-c", WITH_STREAM, "sh", Deno.execPath(), "run", "-A", "main.ts", "run", "-c", file],
    { cwd: REPO_ROOT, env: { JOURNAL_STREAM_SUFFIX: suffix } },
  );
  try {
    await proc.waitForOutput(
      workers > 1 ? /msg="edgemux started" .*workers=\d+,\d+/ : /msg="edgemux started"/,
      30_000,
    );
    // A reload that fails logs an error.
    await Deno.writeTextFile(file, "version: 1\nlisteners: {}\n");
    Deno.kill(proc.pid, "SIGHUP"); // sh exec'd deno: this is edgemux's main process
    await proc.waitForOutput("reload failed", 10_000);
    Deno.kill(proc.pid, "SIGTERM");
    const status = await proc.exited;
    equal(status.code, 0, proc.output());
    return proc.output();
  } finally {
    await proc.stop("SIGKILL");
  }
}

Deno.test("with JOURNAL_STREAM naming its standard error, every line starts with the priority of its level", async (t) => {
  await using dir = await makeTempDir("edgemux-journal-");
  for (const workers of [1, 2]) {
    await t.step(`workers: ${workers}`, async () => {
      const output = await runUnderStream(dir.path, workers);
      const lines = output.split("\n").filter((l) => l !== "");
      const levels = new Set<string>();
      for (const line of lines) {
        const m = /^<(\d)>level=(\w+) msg=/.exec(line);
        ok(m !== null, `not a journald line: ${JSON.stringify(line)}\n${output}`);
        equal(m[1], PRIORITY[m[2]], line);
        equal(line.includes("time="), false, `journald stamps lines itself: ${line}`);
        levels.add(m[2]);
      }
      deepEqual([...levels].sort(), ["error", "info", "warning"], output);
      if (workers > 1) match(output, /worker=1/, "the workers' own lines are prefixed too");
    });
  }
});

Deno.test("a JOURNAL_STREAM that names another stream is ignored: plain logfmt lines with their time", async () => {
  await using dir = await makeTempDir("edgemux-journal-");
  const output = await runUnderStream(dir.path, 1, "9");
  const lines = output.split("\n").filter((l) => l !== "");
  ok(lines.length > 2, output);
  for (const line of lines) match(line, /^time=\S+Z level=\w+ msg=/, output);
});

Deno.test("a real systemd-journald stores edgemux's lines at their priorities, and check's errors at 3", async () => {
  const unshare = requireTool("unshare", "util-linux");
  const journald = requireTool("/lib/systemd/systemd-journald", "systemd");
  requireTool("systemd-cat", "systemd");
  requireTool("journalctl", "systemd");
  requireTool("stat", "coreutils");
  await using dir = await makeTempDir("edgemux-journald-");
  await Deno.writeTextFile(`${dir.path}/edgemux.yaml`, config(1));
  await Deno.writeTextFile(
    `${dir.path}/bad.yaml`,
    `version: 1
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { sni: app.example.test, edge: nope }
`,
  );
  // Private /run and /var/log: journald's sockets and journal files live and die in there.
  const script = `set -eu
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/log
${journald} &
journald=$!
trap 'kill $journald' EXIT
i=0; until [ -S /run/systemd/journal/stdout ]; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
with_stream='${WITH_STREAM}'
systemd-cat -t edgemux-run sh -c "$with_stream" sh "$DENO" run -A main.ts run -c "$DIR/edgemux.yaml" &
edgemux=$!
i=0
until journalctl -t edgemux-run -o cat 2>/dev/null | grep -q 'msg="edgemux started"'; do
  i=$((i+1)); [ $i -lt 300 ]; sleep 0.1
done
kill -TERM $edgemux
wait $edgemux
systemd-cat -t edgemux-check sh -c "$with_stream" sh "$DENO" run -A main.ts check -c "$DIR/bad.yaml" || true
journalctl -o json --no-pager > "$DIR/journal.json"
journalctl -t edgemux-run -p warning -o cat --no-pager > "$DIR/warnings.txt"
`;
  const r = await run(unshare, ["-m", "--propagation", "private", "sh", "-c", script], {
    cwd: REPO_ROOT,
    env: { DENO: Deno.execPath(), DIR: dir.path },
    timeoutMs: 60_000,
  });
  equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  const entries = (await Deno.readTextFile(`${dir.path}/journal.json`)).split("\n")
    .filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, string>);
  const of = (id: string) => entries.filter((e) => e.SYSLOG_IDENTIFIER === id);
  const runEntries = of("edgemux-run");
  ok(runEntries.length > 3, JSON.stringify(entries, null, 1));
  for (const e of runEntries) {
    const m = /^level=(\w+) msg=/.exec(e.MESSAGE);
    ok(m !== null, `journald kept a prefix or a time: ${e.MESSAGE}`);
    equal(e.PRIORITY, PRIORITY[m[1]], e.MESSAGE);
  }
  const priorities = new Set(runEntries.map((e) => e.PRIORITY));
  deepEqual([...priorities].sort(), ["4", "6"]);
  // `journalctl -p warning` (docs/install.md) shows the warnings, and nothing below them.
  const warnings = (await Deno.readTextFile(`${dir.path}/warnings.txt`)).split("\n")
    .filter((l) => l !== "");
  ok(warnings.length > 0);
  for (const w of warnings) match(w, /^level=(warning|error) /);
  // `systemctl reload` runs `edgemux check` first: its errors are errors in the journal.
  const check = of("edgemux-check");
  ok(check.length >= 2, JSON.stringify(check));
  deepEqual([...new Set(check.map((e) => e.PRIORITY))], ["3"]);
  ok(check.some((e) => /the backend "nope" is not defined/.test(e.MESSAGE)));
});
