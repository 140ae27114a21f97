import { equal, ok } from "node:assert/strict";
import { parseBackendConfig } from "../_testing/backend_config.ts";
import { Backend } from "../backends/backend.ts";
import { DeadlineSet } from "../deadlines.ts";
import { BackendPool, type UpstreamConn, UpstreamSet } from "./pool.ts";

/** A server that answers each connection's first bytes with `reply`, and counts connections. */
function server(reply: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      reply(conn).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    conns,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
    },
  };
}

function poolFor(port: number, extra = ""): BackendPool {
  const config = parseBackendConfig(
    `servers: ["127.0.0.1:${port}"]\nconnect_timeout: 300ms\n${extra}`,
    "pool_test.yaml",
  );
  return new BackendPool(new Backend(config), null, new DeadlineSet());
}

async function take(set: UpstreamSet, pool: BackendPool): Promise<UpstreamConn> {
  const got = await set.acquire(pool, true, undefined);
  if ("failure" in got) throw new Error(`acquire failed: ${got.failure}`);
  return got.up;
}

const waitFor = async (cond: () => boolean, ms = 2000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("UpstreamSet reuses a quiet idle connection for the same client connection", async () => {
  const s = server(() => new Promise(() => {}));
  const pool = poolFor(s.port);
  const set = new UpstreamSet(4);
  try {
    const first = await take(set, pool);
    set.release(first, true);
    equal(set.idle, 1);
    const again = await take(set, pool);
    equal(again, first);
    equal(s.conns.length, 1);
    set.release(again, false);
  } finally {
    set.close();
    s.close();
  }
});

Deno.test("UpstreamSet drops an idle connection on which the server speaks or closes", async (t) => {
  for (
    const [what, act] of [
      ["speaks", (c: Deno.Conn) => c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"))],
      ["closes", (c: Deno.Conn) => Promise.resolve(c.close())],
    ] as const
  ) {
    await t.step(`the server ${what}`, async () => {
      const s = server(() => new Promise(() => {}));
      const pool = poolFor(s.port);
      const set = new UpstreamSet(4);
      try {
        const up = await take(set, pool);
        set.release(up, true);
        await waitFor(() => s.conns.length === 1);
        await act(s.conns[0]);
        await waitFor(() => set.idle === 0);
        const next = await take(set, pool);
        ok(next !== up, "the woken connection was handed out again");
        equal(s.conns.length, 2);
        set.release(next, false);
      } finally {
        set.close();
        s.close();
      }
    });
  }
});

Deno.test("UpstreamSet never hands one client connection's idle connection to another", async () => {
  const s = server(() => new Promise(() => {}));
  const pool = poolFor(s.port);
  const a = new UpstreamSet(4);
  const b = new UpstreamSet(4);
  try {
    const up = await take(a, pool);
    a.release(up, true);
    const other = await take(b, pool);
    ok(other !== up);
    equal(s.conns.length, 2);
    b.release(other, false);
  } finally {
    a.close();
    b.close();
    s.close();
  }
});

Deno.test("UpstreamSet holds further requests at its limit, then refuses after the connect timeout", async () => {
  const s = server(() => new Promise(() => {}));
  const pool = poolFor(s.port);
  const set = new UpstreamSet(2);
  try {
    const one = await take(set, pool);
    const two = await take(set, pool);
    equal(set.busy, 2);
    // A third waits and gets the slot the first gives back.
    const third = set.acquire(pool, true, undefined);
    await new Promise((r) => setTimeout(r, 50));
    set.release(one, true);
    const got = await third;
    ok(!("failure" in got));
    equal(got.up, one, "the idle connection given back is the one reused");
    // A fourth finds both busy and gives up after the backend's connect timeout.
    const started = Date.now();
    const refused = await set.acquire(pool, true, undefined);
    ok("failure" in refused);
    equal(refused.failure, "upstream-limit");
    ok(Date.now() - started >= 250);
    set.release(got.up, false);
    set.release(two, false);
    equal(set.busy, 0);
    equal(pool.backend.servers[0].active, 0);
  } finally {
    set.close();
    s.close();
  }
});
