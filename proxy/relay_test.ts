import { equal, ok } from "node:assert/strict";
import { DeadlineSet } from "./deadlines.ts";
import {
  BufferPool,
  BUSY_BUFFER,
  IDLE_BUFFER,
  pools,
  relay,
  RelayControl,
  WARM_BUFFER,
} from "./relay.ts";

const deadlines = new DeadlineSet();

/** A connected TCP pair on loopback: [the side relay() gets, the side the test drives]. */
async function pair(): Promise<[Deno.TcpConn, Deno.TcpConn, () => void]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [inner, outer] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port }),
  ]);
  return [inner, outer, () => listener.close()];
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      break;
    }
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

Deno.test("relay() passes a client's half-close on and still delivers the server's reply", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines });
  await writeAll(client, new TextEncoder().encode("question"));
  await client.closeWrite();
  // The server sees EOF after the question, then answers on its still-open write side.
  const asked = new TextDecoder().decode(await readAll(server));
  equal(asked, "question");
  await writeAll(server, new TextEncoder().encode("answer"));
  server.close();
  equal(new TextDecoder().decode(await readAll(client)), "answer");
  const result = await done;
  equal(result.up, 8);
  equal(result.down, 6);
  equal(result.end, "client-closed");
  client.close();
  stop1();
  stop2();
});

Deno.test("relay() copies 32 MiB each way intact across buffer switches", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines });
  const size = 32 * 1024 * 1024;
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) payload[i] = (i / 4096) & 0xff;
  const [toServer, toClient] = await Promise.all([
    readAll(server),
    readAll(client),
    (async () => {
      await writeAll(client, payload);
      await client.closeWrite();
    })(),
    (async () => {
      await writeAll(server, payload);
      await server.closeWrite();
    })(),
  ]);
  equal(toServer.length, size);
  equal(toClient.length, size);
  ok(toServer.every((b, i) => b === payload[i]));
  ok(toClient.every((b, i) => b === payload[i]));
  const result = await done;
  equal(result.up, size);
  equal(result.down, size);
  client.close();
  server.close();
  stop1();
  stop2();
});

Deno.test("relay() closes both sides after the idle timeout", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const started = performance.now();
  const result = await relay(clientInner, serverInner, { idleTimeout: 300, deadlines });
  const elapsed = performance.now() - started;
  equal(result.end, "idle-timeout");
  ok(elapsed >= 290 && elapsed < 2000, `idle close after ${elapsed} ms`);
  equal((await readAll(client)).length, 0);
  equal((await readAll(server)).length, 0);
  client.close();
  server.close();
  stop1();
  stop2();
});

Deno.test("relay() passes on a server that goes away, and ends when the client follows", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines });
  await writeAll(client, new Uint8Array(10));
  // Closing with unread data makes the kernel send a reset rather than a FIN.
  await server.read(new Uint8Array(1));
  server.close();
  equal((await readAll(client)).length, 0);
  client.close();
  const result = await done;
  ok(result.end === "upstream-reset" || result.end === "upstream-closed", result.end);
  equal(result.up, 10);
  stop1();
  stop2();
});

Deno.test("relay() closes both sides at once when its signal aborts", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const ac = new AbortController();
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines, signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  equal((await done).end, "shutdown");
  equal((await readAll(client)).length, 0);
  client.close();
  server.close();
  stop1();
  stop2();
});

Deno.test("relay() takes over a read the sniffer already started", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const buffer = new Uint8Array(1024);
  const pending = { promise: clientInner.read(buffer), buffer };
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines, pending });
  await writeAll(client, new TextEncoder().encode("late first words"));
  await client.closeWrite();
  equal(new TextDecoder().decode(await readAll(server)), "late first words");
  server.close();
  equal((await done).up, 16);
  client.close();
  stop1();
  stop2();
});

Deno.test("RelayControl.tighten() shortens a running relay's idle timeout, and bytes still move", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const control = new RelayControl();
  const started = Date.now();
  const done = relay(clientInner, serverInner, { idleTimeout: 60_000, deadlines, control });
  await writeAll(server, new TextEncoder().encode("last words"));
  control.tighten(300);
  control.tighten(10_000); // never lengthens it
  const buf = new Uint8Array(64);
  const n = await client.read(buf);
  equal(new TextDecoder().decode(buf.subarray(0, n!)), "last words");
  const result = await done;
  equal(result.end, "idle-timeout");
  const took = Date.now() - started;
  ok(took < 5000, `the relay ended after ${took} ms, not at the tightened timeout`);
  client.close();
  server.close();
  stop1();
  stop2();
});

Deno.test("RelayControl.tighten() before the relay starts applies once it does", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const control = new RelayControl();
  control.tighten(200);
  const result = await relay(clientInner, serverInner, { idleTimeout: 60_000, deadlines, control });
  equal(result.end, "idle-timeout");
  client.close();
  server.close();
  stop1();
  stop2();
});

/** Lets pending op completions and their continuations run, up to `turns` event-loop turns. */
async function settle(done: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns && !done(); i++) await new Promise((r) => setTimeout(r, 0));
}

const borrowed = () => pools.warm.borrowed + pools.busy.borrowed;

/** Writes `size` bytes into `from` and reads them all from `to`, through the relay. */
async function through(from: Deno.Conn, to: Deno.Conn, size: number): Promise<void> {
  const buf = new Uint8Array(size);
  await Promise.all([
    writeAll(from, new Uint8Array(size).fill(7)),
    (async () => {
      for (let got = 0; got < size;) got += (await to.read(buf.subarray(got)))!;
    })(),
  ]);
}

Deno.test("a relay held after a TLS server's first flight keeps no pooled buffer", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const before = { borrowed: borrowed(), warm: pools.warm.lent };
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines });
  // A read that fills the idle buffer (so the next goes into a warm one), then one that comes
  // back short but larger than the idle buffer: a 2–3 KB first flight arriving in two parts.
  // The connection then holds, as a TLS client that waits on its user would.
  await through(server, client, IDLE_BUFFER);
  await through(server, client, 2500);
  ok(pools.warm.lent > before.warm, "no warm buffer was used: the test proves nothing");
  await settle(() => borrowed() === before.borrowed);
  equal(borrowed(), before.borrowed, "a read waits on a pooled buffer while nothing moves");
  client.close();
  server.close();
  await done;
  stop1();
  stop2();
});

Deno.test("a relay never waits on a busy buffer, and gives the warm one back once a stream ends", async () => {
  const [clientInner, client, stop1] = await pair();
  const [serverInner, server, stop2] = await pair();
  const before = { warm: pools.warm.borrowed, busy: pools.busy.borrowed, lent: pools.busy.lent };
  const done = relay(clientInner, serverInner, { idleTimeout: 5000, deadlines });
  // Full reads climb to a busy buffer; a short read of a stream's size steps down to a warm one.
  await through(server, client, IDLE_BUFFER);
  await through(server, client, WARM_BUFFER);
  await through(server, client, WARM_BUFFER + 1000);
  ok(pools.busy.lent > before.lent, "no busy buffer was used: the test proves nothing");
  await settle(() => pools.busy.borrowed === before.busy);
  equal(pools.busy.borrowed, before.busy, "a read waits on a busy buffer");
  ok(pools.warm.borrowed <= before.warm + 1);
  // A small read ends the stream: back to the idle buffer.
  await through(server, client, 100);
  await settle(() => pools.warm.borrowed === before.warm);
  equal(pools.warm.borrowed, before.warm, "a warm buffer outlives the stream");
  // The same after a bulk transfer both ways (a size that no buffer size divides evenly), once
  // a small message has gone each way.
  const size = 4 * BUSY_BUFFER + 100;
  await Promise.all([through(client, server, size), through(server, client, size)]);
  await settle(() => pools.busy.borrowed === before.busy);
  equal(pools.busy.borrowed, before.busy, "a busy buffer stays borrowed after a bulk transfer");
  await through(client, server, 100);
  await through(server, client, 100);
  await settle(() => borrowed() === before.warm + before.busy);
  equal(borrowed(), before.warm + before.busy, "a pooled buffer stays borrowed after a transfer");
  ok(pools.warm.pooled <= pools.warm.limit && pools.busy.pooled <= pools.busy.limit);
  client.close();
  server.close();
  await done;
  stop1();
  stop2();
});

Deno.test("BufferPool keeps at most its limit, and trim() frees what no borrow needed", () => {
  const p = new BufferPool(1024, 4, 0);
  const out = Array.from({ length: 6 }, () => p.borrow());
  equal(p.borrowed, 6);
  for (const b of out) p.giveBack(b);
  equal(p.borrowed, 0);
  equal(p.pooled, 4, "more than the limit kept");
  // Everything came back after the last trim: the first trim keeps it (it may be about to be
  // needed again), the next frees what was not borrowed in between.
  p.trim();
  equal(p.pooled, 4);
  p.giveBack(p.borrow());
  p.trim();
  equal(p.pooled, 1, "buffers that no borrow needed were kept");
  p.trim();
  equal(p.pooled, 0, "the pool does not shrink to nothing once idle");
  // Reused, not reallocated, while pooled.
  const b = p.borrow();
  p.giveBack(b);
  equal(p.borrow(), b);
});

Deno.test("the relay's pools are bounded to 5 MiB and trimmed", () => {
  equal(pools.warm.size, WARM_BUFFER);
  equal(pools.busy.size, BUSY_BUFFER);
  ok(pools.warm.size * pools.warm.limit + pools.busy.size * pools.busy.limit <= 5 * 1024 * 1024);
  ok(pools.warm.trimEvery > 0 && pools.busy.trimEvery > 0, "a shared pool is never trimmed");
});
