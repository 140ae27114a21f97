import { equal, ok } from "node:assert/strict";
import { renderStatusPage, type StatusReport } from "./status.ts";

function report(reloads: StatusReport["reloads"]): StatusReport {
  return {
    version: "0.0.0",
    pid: 1,
    startedAt: "2026-01-01T00:00:00.000Z",
    uptimeSeconds: 5,
    configFiles: ["/etc/edgemux/edgemux.yaml"],
    reloads,
    activeConnections: 0,
    listeners: [],
    backends: [],
    certificates: [],
    recentProblems: [],
  };
}

const BANNER = /<p class="bad" id="reload-failed">Last reload failed[^<]*bad key/;
const NOTE = 'id="reload-recovered"';

Deno.test("renderStatusPage() shows the failed-reload banner only while the last reload is the failed one", () => {
  const none = renderStatusPage(
    report({ count: 0, failures: 0, lastOk: null, lastFailure: null, lastError: null }),
  );
  ok(!BANNER.test(none) && !none.includes(NOTE));

  const failedFirst = renderStatusPage(
    report({ count: 0, failures: 1, lastOk: null, lastFailure: 1000, lastError: "bad key" }),
  );
  ok(BANNER.test(failedFirst), failedFirst);

  const failedAfterGood = renderStatusPage(
    report({ count: 1, failures: 1, lastOk: 1000, lastFailure: 2000, lastError: "bad key" }),
  );
  ok(BANNER.test(failedAfterGood));

  const goodAfterFailed = renderStatusPage(
    report({ count: 1, failures: 1, lastOk: 2000, lastFailure: 1000, lastError: "bad key" }),
  );
  ok(!BANNER.test(goodAfterFailed), goodAfterFailed);
  ok(goodAfterFailed.includes(NOTE));
  ok(goodAfterFailed.includes('1 reloads, <span class="bad">1 failed</span>'));
});

Deno.test("renderStatusPage() escapes the reload error", () => {
  const page = renderStatusPage(
    report({ count: 0, failures: 1, lastOk: null, lastFailure: 1, lastError: "<script>x" }),
  );
  equal(page.includes("<script>x"), false);
  ok(page.includes("&lt;script&gt;x"));
});
