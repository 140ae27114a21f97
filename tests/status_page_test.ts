/**
 * The status page after reloads, as headless Chromium renders it: a failed reload shows the red
 * banner with its error; a later good reload takes the banner away (leaving a muted note of
 * the failure), with one process and with `workers: 2` alike.
 */

import { equal, ok } from "node:assert/strict";
import { startTcpBackend } from "./_helpers/backends.ts";
import { HEADLESS_CHROMIUM_FLAGS } from "./_helpers/chromium.ts";
import {
  echoForwardConfig,
  type EdgemuxCli,
  replaceFile,
  startEdgemuxCliOnFreePort,
} from "./_helpers/edgemux_cli.ts";
import { run } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

/** The page's DOM once Chromium has loaded it. */
async function dumpDom(url: string): Promise<string> {
  const chromium = requireTool("chromium", "chromium");
  await using profile = await makeTempDir("edgemux-chromium-");
  const result = await run(chromium, [
    ...HEADLESS_CHROMIUM_FLAGS,
    `--user-data-dir=${profile.path}`,
    "--dump-dom",
    url,
  ], { timeoutMs: 45_000 });
  equal(result.code, 0, `chromium failed:\n${result.stderr}`);
  ok(result.stdout.includes("<h1>edgemux "), `not the status page:\n${result.stdout}`);
  return result.stdout;
}

interface Reloads {
  count: number;
  failures: number;
}

/** Polls /status.json until its reload counts are `want`. */
async function waitForReloads(cli: EdgemuxCli, want: Reloads): Promise<void> {
  const deadline = performance.now() + 15_000;
  let last: Reloads | null = null;
  while (performance.now() < deadline) {
    const res = await fetch(`${cli.adminUrl}/status.json`, { signal: AbortSignal.timeout(5000) });
    last = (await res.json() as { reloads: Reloads }).reloads;
    if (last.count === want.count && last.failures === want.failures) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`reloads stayed ${JSON.stringify(last)}, want ${JSON.stringify(want)}`);
}

/** A red paragraph about a reload that quotes the failure (the bad config's unknown key). */
const BANNER = /<p class="bad"[^>]*>[^<]*reload[^<]*bogus/i;
const NOTE = 'id="reload-recovered"';

for (const workers of [1, 2]) {
  Deno.test(`status page (workers: ${workers}): the failed-reload banner shows after a failed reload and goes after a good one`, async () => {
    await using echo = await startTcpBackend("echo", "echo");
    await using dir = await makeTempDir("edgemux-status-page-");
    const file = `${dir.path}/edgemux.yaml`;
    const { cli: c } = await startEdgemuxCliOnFreePort(
      file,
      (tcpPort) =>
        echoForwardConfig(echo.port, {
          tcpPort,
          top: `workers: ${workers}\nadmin: { bind: "127.0.0.1:0" }\n`,
        }),
      { startTimeoutMs: 30_000 },
    );
    await using cli = c;
    const page = `${cli.adminUrl}/`;
    const good = await Deno.readTextFile(file);

    let dom = await dumpDom(page);
    ok(!BANNER.test(dom) && !dom.includes(NOTE), "a reload notice before any reload");

    await replaceFile(file, "version: 1\nlisteners: {}\nbogus: true\n");
    cli.signal("SIGHUP");
    await waitForReloads(cli, { count: 0, failures: 1 });
    dom = await dumpDom(page);
    ok(BANNER.test(dom), `no failed-reload banner that says what failed:\n${dom}`);
    // Among the recent problems too (with workers: the supervisor's own log).
    ok(dom.includes("reload failed; the running config stays"), "not among the recent problems");

    await replaceFile(file, good);
    cli.signal("SIGHUP");
    await waitForReloads(cli, { count: 1, failures: 1 });
    dom = await dumpDom(page);
    ok(!BANNER.test(dom), `the banner stayed after a good reload:\n${dom}`);
    ok(dom.includes(NOTE), "no note of the earlier failure");
    ok(dom.includes("1 reloads") && dom.includes("1 failed"), "the counts are not shown");
  });
}
