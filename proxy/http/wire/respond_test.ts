import { equal, notEqual } from "node:assert/strict";
import { simpleResponse, simpleResponseInto, type SimpleResponseOptions } from "./respond.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

const CASES: [string, number, SimpleResponseOptions][] = [
  ["a redirect", 308, {
    headers: [["location", "https://a.example.test/x?y=1"]],
    body: "Redirecting to https://a.example.test/x?y=1\n",
  }],
  ["a redirect to HEAD", 301, { headers: [["location", "https://a/"]], head: true }],
  ["a close", 400, { close: true }],
  ["a body that is not ASCII", 308, { body: "Redirecting to https://ä.example.test/ü\n" }],
];

for (const [what, status, opts] of CASES) {
  Deno.test(`simpleResponseInto() writes what simpleResponse() does: ${what}`, () => {
    const scratch = new Uint8Array(4096);
    const out = simpleResponseInto(scratch, status, opts);
    equal(out.buffer, scratch.buffer);
    equal(text(out), text(simpleResponse(status, opts)));
  });
}

Deno.test("simpleResponse() counts the body's length in bytes, not characters", () => {
  const out = text(simpleResponse(308, { body: "ü\n" }));
  equal(out.includes("content-length: 3\r\n"), true, out);
});

Deno.test("simpleResponseInto() falls back to fresh memory when the buffer is too small", () => {
  const opts: SimpleResponseOptions = {
    headers: [["location", "https://a.example.test/" + "p".repeat(300)]],
  };
  for (const size of [16, 200, 500]) {
    const scratch = new Uint8Array(size);
    const out = simpleResponseInto(scratch, 308, opts);
    notEqual(out.buffer, scratch.buffer);
    equal(text(out), text(simpleResponse(308, opts)));
  }
});
