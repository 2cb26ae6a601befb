// The upload page in web/ with its own flow.js options (4 MiB chunks,
// forceChunkSize, random identifiers), as a visitor uses it: the file and
// folder pickers, the keyboard, drag and drop, a page on another origin, two
// visitors at once, and the progress, speed and time-left display.
//
// With SCREENSHOT_DIR set (e.g. SCREENSHOT_DIR=docs) the progress test saves
// browser-upload-in-progress.png and browser-upload-complete.png there.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as h from "./helpers.mjs";
import { withPage } from "./scenarios.mjs";

const { MiB, KiB } = h;

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([h.startServer(), h.launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.kill();
});

test("page options: 0 B, 1 B, chunkSize, chunkSize+1, 2×chunkSize−1, 50 MiB at once and a folder arrive intact", { timeout: 120_000 }, async () => {
  await withPage(browser, server);
});

test("keyboard only: Tab to “Choose files…”, Enter, upload; every control has a name", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("page-keyboard");
  const f = h.makeFile(dir, "keyboard.bin", 300 * KiB);
  const page = await h.newPage(browser);
  await page.goto(server.url + "/");

  // The first controls in tab order are the link in the intro and the pickers.
  let focused = "";
  for (let i = 0; i < 5 && focused !== "Choose files…"; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement.textContent.trim());
  }
  assert.equal(focused, "Choose files…");
  const chooserShown = page.waitForEvent("filechooser");
  await page.evaluate(() => 0); // lets Playwright start intercepting the chooser first
  await page.keyboard.press("Enter");
  const chooser = await chooserShown;
  assert.equal(chooser.isMultiple(), true);
  await chooser.setFiles(f.path);
  await h.waitFinished(page, 1, 30_000);
  await h.checkUploaded(assert, server, page, [f]);

  // Accessible names a screen reader would read.
  for (const name of ["Choose files…", "Choose a folder…", "Pause all", "Resume all", "Cancel all", "Clear finished", "Remove keyboard.bin"]) {
    assert.equal(await page.getByRole("button", { name, exact: true }).count(), 1, `button “${name}”`);
  }
  assert.equal(await page.getByRole("progressbar", { name: "Overall progress" }).count(), 1);
  assert.equal(await page.getByRole("progressbar", { name: "Progress of keyboard.bin" }).count(), 1);
  await expectText(page, "#announce", "keyboard.bin: upload complete");
  // The file inputs are labelled too, though only the buttons are in the tab order.
  assert.equal(await page.getByLabel("Choose files").count(), 1);
  assert.equal(await page.getByLabel("Choose a folder").count(), 1);
  await page.context().close();
});

test("drag and drop: a folder and a file dropped on the page upload with their paths", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("page-drop");
  const files = [
    h.makeFile(dir, "dropped/photos/one.jpg", 700 * KiB),
    h.makeFile(dir, "dropped/two.txt", 5),
    h.makeFile(dir, "loose.bin", 4 * MiB + 100),
  ];
  const page = await h.newPage(browser);
  await page.goto(server.url + "/");
  // A native drag from outside the browser, through the DevTools protocol:
  // Chromium builds the DataTransfer (with directory entries) as for a user.
  const box = await page.locator("#drop").boundingBox();
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const data = { items: [], files: [path.join(dir, "dropped"), path.join(dir, "loose.bin")], dragOperationsMask: 1 };
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Input.dispatchDragEvent", { type: "dragEnter", ...at, data });
  await cdp.send("Input.dispatchDragEvent", { type: "dragOver", ...at, data });
  assert.match(await page.locator("#drop").getAttribute("class"), /\bover\b/, "the drop zone highlights");
  await cdp.send("Input.dispatchDragEvent", { type: "drop", ...at, data });
  const rows = await h.waitFinished(page, files.length, 40_000);
  assert.doesNotMatch(await page.locator("#drop").getAttribute("class"), /\bover\b/);
  assert.deepEqual(rows.map((r) => r.shownName).sort(), files.map((f) => f.rel).sort());
  await h.checkUploaded(assert, server, page, files);
  await page.context().close();
});

test("a static site on another origin: ?api= points the page at the API", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("page-cors");
  const files = [h.makeFile(dir, "cross-origin.bin", 6 * MiB + 5), h.makeFile(dir, "small.txt", 100)];
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { bodies: false });
  // localhost and 127.0.0.1 are different origins: every request is CORS.
  const api = `${server.url}/upload`;
  await page.goto(`http://localhost:${server.port}/?api=${encodeURIComponent(api)}`);
  await expectText(page, "#api-url", api);
  await page.setInputFiles("#pick-files", files.map((f) => f.path));
  await h.waitFinished(page, 2, 40_000);
  await h.checkUploaded(assert, server, page, files);
  assert.equal(w.posts, 3);
  assert.ok(w.statuses.every((s) => s === 200));
  await page.context().close();
});

test("two visitors with files of the same name, size and date never share an upload", { timeout: 60_000 }, async () => {
  const a = h.makeFile(h.tmpDir("visitor-a"), "report.pdf", 9 * MiB);
  const b = h.makeFile(h.tmpDir("visitor-b"), "report.pdf", 9 * MiB);
  const when = new Date("2024-05-01T12:00:00Z");
  fs.utimesSync(a.path, when, when);
  fs.utimesSync(b.path, when, when);
  assert.notEqual(a.sha256, b.sha256);

  const [pa, pb] = await Promise.all([h.newPage(browser), h.newPage(browser)]);
  await Promise.all([pa.goto(server.url + "/"), pb.goto(server.url + "/")]);
  await Promise.all([pa.setInputFiles("#pick-files", a.path), pb.setInputFiles("#pick-files", b.path)]);
  const [ra, rb] = await Promise.all([h.waitFinished(pa, 1, 40_000), h.waitFinished(pb, 1, 40_000)]);
  assert.notEqual(ra[0].identifier, rb[0].identifier);
  assert.notEqual(ra[0].location, rb[0].location);
  await h.checkUploaded(assert, server, pa, [a]);
  await h.checkUploaded(assert, server, pb, [b]);
  await Promise.all([pa.context().close(), pb.context().close()]);
});

test("progress, speed and time left per file and overall; pause one file; screenshots", { timeout: 90_000 }, async () => {
  const dir = h.tmpDir("page-progress");
  const files = [
    h.makeFile(dir, "holiday/beach.jpg", 6 * MiB),
    h.makeFile(dir, "holiday/sunset.jpg", 3 * MiB),
    h.makeFile(dir, "holiday/video.mp4", 14 * MiB),
    h.makeFile(dir, "report.pdf", 2 * MiB + 300 * KiB),
    h.makeFile(dir, "notes.txt", 42 * KiB),
  ];
  const page = await h.newPage(browser);
  await h.throttlePosts(page, 250);
  await page.goto(server.url + "/?chunkSize=262144");
  await page.setInputFiles("#pick-folder", path.join(dir, "holiday"));
  await page.setInputFiles("#pick-files", [path.join(dir, "report.pdf"), path.join(dir, "notes.txt")]);

  const video = page.locator("li.file", { hasText: "holiday/video.mp4" });
  await page.waitForFunction(() => {
    const v = [...document.querySelectorAll("li.file")].find((li) => li.textContent.includes("video.mp4"));
    return v && v.querySelector("progress").value > 0.08;
  }, null, { timeout: 30_000, polling: 50 });
  await video.getByRole("button", { name: "Pause holiday/video.mp4" }).click();
  await expectText(video, ".status", "Paused at");

  // Mid-upload: a file done, others moving with their speed and time left.
  const speed = /\d+(\.\d)? (B|KiB|MiB|GiB)\/s/;
  await page.waitForFunction((re) => {
    const rx = new RegExp(re);
    const moving = [...document.querySelectorAll('li.file[data-state="uploading"] .status')].map((s) => s.textContent);
    return document.querySelectorAll('li.file[data-state="complete"]').length >= 1 &&
      moving.some((t) => rx.test(t) && / left$/.test(t)) && rx.test(document.getElementById("overall").textContent);
  }, speed.source, { timeout: 30_000, polling: 50 }).catch(async (err) => {
    throw new Error(`${err.message}\npage: ${JSON.stringify(await h.pageFiles(page))}\noverall: ${await page.locator("#overall").textContent()}`);
  });
  const overall = await page.locator("#overall").textContent();
  assert.match(overall, /files complete · 1 paused · [\d.]+ (KiB|MiB) of [\d.]+ MiB \(\d+%\) · [\d.]+ (KiB|MiB)\/s · .* left/);
  const shot = h.screenshotPath("browser-upload-in-progress.png");
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  await video.getByRole("button", { name: "Resume holiday/video.mp4" }).click();
  await h.waitFinished(page, files.length, 60_000);
  await h.checkUploaded(assert, server, page, files, { chunkSize: 256 * KiB });
  await expectText(page, "#overall", "5 of 5 files complete");
  const done = h.screenshotPath("browser-upload-complete.png");
  if (done) await page.screenshot({ path: done, fullPage: true });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("cancel one file, cancel all: their uploads stop and are forgotten; clear finished", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("page-cancel");
  const [a, b, c] = [h.makeFile(dir, "a.bin", 4 * MiB), h.makeFile(dir, "b.bin", 4 * MiB), h.makeFile(dir, "c.bin", 3 * MiB)];
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { delayMs: 80 });
  await page.goto(server.url + "/?chunkSize=131072");
  await page.setInputFiles("#pick-files", [a.path, b.path, c.path]);
  const ids = Object.fromEntries((await h.pageFiles(page)).map((r) => [r.name, r.identifier]));
  await h.until("a.bin under way", () => w.sentIds.filter((id) => id === ids["a.bin"]).length >= 6);

  await page.getByRole("button", { name: "Cancel a.bin" }).click();
  assert.equal(await page.locator("li.file", { hasText: "a.bin" }).count(), 0, "the row is gone");
  await h.sleep(300);
  const afterCancel = w.sentIds.length;
  await h.until("b.bin under way", () => w.sentIds.slice(afterCancel).filter((id) => id === ids["b.bin"]).length >= 6);
  assert.deepEqual(w.sentIds.slice(afterCancel).filter((id) => id === ids["a.bin"]), [], "nothing of a.bin after Cancel");

  await page.getByRole("button", { name: "Cancel all" }).click();
  assert.equal(await page.locator("#uploads").isVisible(), false, "the list is gone");
  await h.sleep(300);
  const afterAll = w.posts;
  await h.sleep(1000);
  assert.equal(w.posts, afterAll, "nothing sent after Cancel all");
  assert.deepEqual(await flowgateStorage(page), [], "cancelled uploads are forgotten");

  // Chosen again, a cancelled file is a new upload.
  await page.setInputFiles("#pick-files", a.path);
  const [again] = await h.waitFinished(page, 1, 30_000);
  assert.notEqual(again.identifier, ids["a.bin"]);
  await h.checkUploaded(assert, server, page, [a]);
  await page.getByRole("button", { name: "Clear finished" }).click();
  assert.equal(await page.locator("li.file").count(), 0);
  assert.equal(await page.locator("#uploads").isVisible(), false);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

async function expectText(scope, selector, text, timeout = 10_000) {
  const loc = scope.locator(selector).first();
  const deadline = Date.now() + timeout;
  let got;
  while (Date.now() < deadline) {
    got = await loc.textContent();
    if (got.includes(text)) return;
    await h.sleep(50);
  }
  assert.fail(`${selector}: expected “${text}”, got “${got}”`);
}

function flowgateStorage(page) {
  return page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("flowgate:")));
}
