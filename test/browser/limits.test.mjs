// A file over the server's size limit (FLOWGATE_MAX_FILE_SIZE=1MiB): flowgate
// answers 413, which flow.js treats as permanent, and the page says why in
// plain words, while a file under the limit chosen with it still uploads.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as h from "./helpers.mjs";

const { MiB, KiB } = h;

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([
    h.startServer({ env: { FLOWGATE_MAX_FILE_SIZE: "1MiB" } }),
    h.launchBrowser(),
  ]);
});
after(async () => {
  await browser?.close();
  await server?.kill();
});

test("a file over the size limit shows the permanent error; the others still upload", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("limits");
  const big = h.makeFile(dir, "too-big.iso", 3 * MiB);
  const ok = h.makeFile(dir, "fits.txt", 200 * KiB);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page);
  await page.goto(server.url + "/");
  await page.setInputFiles("#pick-files", [big.path, ok.path]);
  await h.waitFinished(page, 2, 30_000);

  const row = page.locator("li.file", { hasText: "too-big.iso" });
  assert.equal(await row.getAttribute("data-state"), "failed");
  const status = row.locator(".status");
  assert.equal(await status.textContent(),
    `Too large: file of ${big.size} bytes is over the limit of ${MiB} bytes.`);
  assert.match(await status.getAttribute("class"), /\berror\b/);
  assert.equal(await status.isVisible(), true);
  // Nothing to pause or retry; it can only be removed.
  assert.equal(await row.getByRole("button", { name: "Pause too-big.iso" }).count(), 0);
  assert.equal(await row.getByRole("button", { name: "Retry too-big.iso now" }).isVisible(), false);
  assert.equal(await row.getByRole("button", { name: "Remove too-big.iso" }).count(), 1);
  assert.match(await page.locator("#announce").textContent(), /too-big\.iso: Too large|fits\.txt: upload complete/);
  assert.match(await page.locator("#overall").textContent(), /^1 of 2 files complete · 1 failed/);

  // The refused file never sent a byte: its test GET got the 413.
  assert.deepEqual(w.sent, [1], "only fits.txt's chunk was POSTed");
  await h.checkUploaded(assert, server, page, [ok]);
  assert.equal(fs.readdirSync(path.join(server.dataDir, "files")).length, 1, "one finished file on the server");

  // Neither file's identifier is kept: the complete one's, nor the failed
  // one's (chosen again, it would be a new upload).
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("flowgate:id:"))), []);

  // The failed file is not offered for resuming after a reload.
  await page.reload();
  assert.equal(await page.locator("#unfinished").isVisible(), false);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
