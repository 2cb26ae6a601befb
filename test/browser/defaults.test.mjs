// flow.js 2.14.1 with its *default* options (only `target` set), in Chromium,
// against `make run`'s server: whatever a site that drops flow.js in unchanged
// sends must arrive intact. The page is on another origin than the API, so
// this is also the CORS path of a static site. (scenarios.mjs has the steps;
// dev.test.mjs runs the same against `make dev`.)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./helpers.mjs";
import { withDefaults } from "./scenarios.mjs";

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([h.startServer(), h.launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.kill();
});

test("flow.js defaults: 0 B, 1 B, chunkSize, chunkSize+1, 2×chunkSize−1, 50 MiB and a folder arrive intact, cross-origin", { timeout: 120_000 }, async () => {
  const { folder } = await withDefaults(browser, server);
  // The server announced each file with its relative path.
  const events = server.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "upload completed");
  for (const f of folder) {
    assert.ok(events.some((e) => e.detail?.relativePath === f.rel), `completion event for ${f.rel}`);
  }
});
