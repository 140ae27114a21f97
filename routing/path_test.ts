import assert from "node:assert/strict";
import fc from "fast-check";
import { normalizePath } from "./path.ts";

Deno.test("normalizePath() returns an already normal path unchanged", () => {
  for (const p of ["/", "/a", "/a/b/", "/a/b?q=1", "/.well-known/acme-challenge/x", "/a..b/c."]) {
    assert.equal(normalizePath(p), p);
  }
});

Deno.test("normalizePath() decodes percent-encoded unreserved characters", () => {
  assert.equal(normalizePath("/%7e/%7Euser"), "/~/~user");
  assert.equal(normalizePath("/%41%42c%2d%5f%2E%30"), "/ABc-_.0");
  assert.equal(normalizePath("/%61dmin"), "/admin");
});

Deno.test("normalizePath() keeps other percent-encodings, with uppercase hex", () => {
  assert.equal(normalizePath("/a%2fb"), "/a%2Fb");
  assert.equal(normalizePath("/a%2Fb"), "/a%2Fb");
  assert.equal(normalizePath("/%e2%82%ac"), "/%E2%82%AC");
  assert.equal(normalizePath("/100%25"), "/100%25");
  // Near miss: a decoded "%25" would make "%2541" mean "%41", then "A"; it stays as it is.
  assert.equal(normalizePath("/%2541"), "/%2541");
});

Deno.test("normalizePath() removes dot-segments", () => {
  assert.equal(normalizePath("/a/../b"), "/b");
  assert.equal(normalizePath("/a/./b"), "/a/b");
  assert.equal(normalizePath("/.."), "/");
  assert.equal(normalizePath("/."), "/");
  assert.equal(normalizePath("/a/b/c/./../../g"), "/a/g"); // RFC 3986 §5.2.4
  assert.equal(normalizePath("/a/.."), "/");
  assert.equal(normalizePath("/a/b/.."), "/a/");
  // Near misses: dots inside a segment are ordinary characters.
  assert.equal(normalizePath("/a/.b/c."), "/a/.b/c.");
  assert.equal(normalizePath("/a/.../b"), "/a/.../b");
});

Deno.test("normalizePath() decodes before removing dot-segments, so %2e%2e counts as ..", () => {
  assert.equal(normalizePath("/public/%2e%2e/admin"), "/admin");
  assert.equal(normalizePath("/public/.%2E/admin"), "/admin");
  assert.equal(normalizePath("/public/%2e/admin"), "/public/admin");
  // Near miss: an encoded slash is not a separator, so no segment here is "..".
  assert.equal(normalizePath("/public/..%2fadmin"), "/public/..%2Fadmin");
  assert.equal(normalizePath("/public%2f..%2fadmin"), "/public%2F..%2Fadmin");
});

Deno.test("normalizePath() keeps repeated slashes, as RFC 3986 does", () => {
  assert.equal(normalizePath("//a"), "//a");
  assert.equal(normalizePath("/a//b"), "/a//b");
  assert.equal(normalizePath("/a//../b"), "/a/b");
  assert.equal(normalizePath("/a//."), "/a//");
});

Deno.test("normalizePath() keeps the query byte for byte", () => {
  assert.equal(normalizePath("/a/../b?x=/../%2e%7e&y=%zz"), "/b?x=/../%2e%7e&y=%zz");
  assert.equal(normalizePath("/%7e?%7e"), "/~?%7e");
  assert.equal(normalizePath("/?"), "/?");
  assert.equal(normalizePath("/a?b?c"), "/a?b?c");
});

Deno.test("normalizePath() follows the RFC 3986 §5.4 examples for absolute paths", () => {
  // Each §5.4.1/§5.4.2 reference, resolved against the base path "/b/c/d;p" and merged as
  // §5.2.3 says (the base's last segment replaced by the reference), before dot removal.
  const cases: [merged: string, expected: string][] = [
    ["/b/c/g", "/b/c/g"],
    ["/b/c/./g", "/b/c/g"],
    ["/b/c/g/", "/b/c/g/"],
    ["/g", "/g"],
    ["/b/c/d;p?y", "/b/c/d;p?y"],
    ["/b/c/g?y", "/b/c/g?y"],
    ["/b/c/;x", "/b/c/;x"],
    ["/b/c/g;x", "/b/c/g;x"],
    ["/b/c/g;x?y", "/b/c/g;x?y"],
    ["/b/c/.", "/b/c/"],
    ["/b/c/./", "/b/c/"],
    ["/b/c/..", "/b/"],
    ["/b/c/../", "/b/"],
    ["/b/c/../g", "/b/g"],
    ["/b/c/../..", "/"],
    ["/b/c/../../", "/"],
    ["/b/c/../../g", "/g"],
    // §5.4.2, abnormal examples
    ["/b/c/../../../g", "/g"],
    ["/b/c/../../../../g", "/g"],
    ["/./g", "/g"],
    ["/../g", "/g"],
    ["/b/c/g.", "/b/c/g."],
    ["/b/c/.g", "/b/c/.g"],
    ["/b/c/g..", "/b/c/g.."],
    ["/b/c/..g", "/b/c/..g"],
    ["/b/c/./../g", "/b/g"],
    ["/b/c/./g/.", "/b/c/g/"],
    ["/b/c/g/./h", "/b/c/g/h"],
    ["/b/c/g/../h", "/b/c/h"],
    ["/b/c/g;x=1/./y", "/b/c/g;x=1/y"],
    ["/b/c/g;x=1/../y", "/b/c/y"],
    ["/b/c/g?y/./x", "/b/c/g?y/./x"],
    ["/b/c/g?y/../x", "/b/c/g?y/../x"],
  ];
  for (const [merged, expected] of cases) {
    assert.equal(normalizePath(merged), expected, merged);
  }
});

Deno.test("normalizePath() refuses targets that are not origin-form paths", () => {
  for (const bad of ["", "a/b", "*", "http://a/b", "?q", " /a"]) {
    assert.equal(normalizePath(bad), null, JSON.stringify(bad));
  }
});

Deno.test("normalizePath() refuses bad percent-encodings, in the path but not the query", () => {
  for (const bad of ["/%zz", "/%4", "/%", "/a%g1", "/%4?1", "/%?ab"]) {
    assert.equal(normalizePath(bad), null, bad);
  }
  assert.equal(normalizePath("/a?%zz%4%"), "/a?%zz%4%");
});

Deno.test("normalizePath() refuses NUL, encoded or not, and other control characters", () => {
  for (const bad of ["/a\0b", "/a?\0", "/%00", "/a%00/b", "/a\tb", "/a\r\nb", "/a b", "/a\x7f"]) {
    assert.equal(normalizePath(bad), null, JSON.stringify(bad));
  }
  // Near miss: bytes that merely start with 0 are fine.
  assert.equal(normalizePath("/%01%0a"), "/%01%0A");
});

// Property tests (STYLE.md §12). Paths are drawn from an alphabet rich in the characters that
// matter here, so dot-segments and percent-encodings come up often.
const PATH_UNITS = ["/", "/", ".", ".", "a", "B", "~", "-", "%", "2", "e", "E", "f", "F", "7", "0"];
const pathArb = fc.tuple(
  fc.string({ unit: fc.constantFrom(...PATH_UNITS), maxLength: 30 }),
  fc.option(fc.string({ unit: fc.constantFrom(...PATH_UNITS, "?", "="), maxLength: 10 })),
).map(([p, q]) => "/" + p + (q === null ? "" : "?" + q));

Deno.test("normalizePath() is idempotent", () => {
  fc.assert(
    fc.property(pathArb, (p) => {
      const once = normalizePath(p);
      if (once !== null) assert.equal(normalizePath(once), once);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("normalizePath() never leaves a dot-segment and always keeps the query", () => {
  fc.assert(
    fc.property(pathArb, (p) => {
      const n = normalizePath(p);
      if (n === null) return;
      const q = n.indexOf("?");
      const path = q < 0 ? n : n.slice(0, q);
      assert.ok(path.startsWith("/"));
      assert.ok(!path.split("/").some((s) => s === "." || s === ".."), n);
      assert.equal(q < 0 ? "" : n.slice(q), p.includes("?") ? p.slice(p.indexOf("?")) : "");
    }),
    { numRuns: 5000 },
  );
});

Deno.test("normalizePath() gives the same result whichever way unreserved characters are spelt", () => {
  const unreserved = /[A-Za-z0-9\-._~]/;
  fc.assert(
    fc.property(pathArb, fc.infiniteStream(fc.nat({ max: 2 })), (p, choices) => {
      const plain = normalizePath(p);
      if (plain === null) return;
      const q = p.indexOf("?");
      const end = q < 0 ? p.length : q;
      let spelt = "";
      for (let i = 0; i < end; i++) {
        const c = p[i];
        if (c === "%") { // copy a whole encoding as it is
          spelt += p.slice(i, i + 3);
          i += 2;
          continue;
        }
        const hex = c.charCodeAt(0).toString(16);
        const how = unreserved.test(c) ? choices.next().value : 0;
        spelt += how === 0 ? c : how === 1 ? "%" + hex : "%" + hex.toUpperCase();
      }
      assert.equal(normalizePath(spelt + p.slice(end)), plain, spelt);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("normalizePath() ignores a /segment/.. put in front of a path", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z]{1,5}$/), pathArb, (segment, p) => {
      assert.equal(normalizePath(`/${segment}/..${p}`), normalizePath(p));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("normalizePath() never throws on arbitrary strings", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), pathArb), (s) => {
      const n = normalizePath(s);
      assert.ok(n === null || n.startsWith("/"));
    }),
    { numRuns: 5000 },
  );
});
