// When the server loses or fails an upload (issue 11), on the page in web/
// against make run's server; where an upload must expire, a server of the
// test's own with a short expiry (FLOWGATE_EXPIRY=3s, swept every 500 ms), so
// that a paused upload really expires mid-way:
//
// - the server fails an upload for real (its staging file removed behind its
//   back): the page shows the server's reason, forgets the identifier, and
//   the same file chosen again uploads afresh under a new one;
// - a pause across the expiry: the chunks sent after it start a new upload on
//   the server, which lacks the earlier ones; the page sees the upload stall
//   at "receiving", tests every chunk again and sends exactly the missing ones;
// - the new upload expires too while the page waits for the status ("unknown"):
//   the page sends the whole file again;
// - a server that keeps reporting chunks missing: the page tries three times,
//   then says so, and stops.
//
// Chunks are 128 KiB (?chunkSize=) and every POST is held back 80 ms in the
// browser, so that an upload is reliably caught halfway.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as h from "./helpers.mjs";

const { MiB, KiB } = h;
const CHUNK = 128 * KiB;

const SHORT_EXPIRY = { FLOWGATE_EXPIRY: "3s", FLOWGATE_SWEEP_INTERVAL: "500ms" };

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([h.startServer(), h.launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.kill();
});

async function openPage(server) {
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { delayMs: 80 });
  // Every text the page announces (the live region keeps only the last).
  await page.addInitScript(() => {
    window.announced = [];
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.getElementById("announce");
      new MutationObserver(() => window.announced.push(el.textContent))
        .observe(el, { childList: true, characterData: true, subtree: true });
    });
  });
  await page.goto(`${server.url}/?chunkSize=${CHUNK}`);
  return { page, w };
}

const announced = (page) => page.evaluate(() => window.announced);
const savedIdentifiers = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("flowgate:id:")));
const recoveries = (page) => page.evaluate(() => Object.values(window.flowgatePage.entries).map((e) => e.recoveries));

/** forgotten waits until the server no longer knows the upload (the sweeper removed it). */
function forgotten(server, fields) {
  return h.until("the server to forget the upload", async () => (await h.status(server, fields)).state === "unknown", 30_000, 200);
}

/** eachOnce asserts that list holds every chunk number 1..chunks exactly once. */
function eachOnce(list, chunks, what) {
  const sorted = [...list].sort((a, b) => a - b);
  assert.deepEqual(sorted, Array.from({ length: chunks }, (_, i) => i + 1), what);
}

/**
 * pauseAcrossExpiry pauses the page's one file once some chunks are stored,
 * waits until the server has forgotten them, calls meanwhile(), and resumes.
 */
async function pauseAcrossExpiry(server, page, w, name, meanwhile = async () => {}) {
  await h.until("4 chunks acknowledged", () => w.acked.length >= 4);
  await page.getByRole("button", { name: `Pause ${name}` }).click();
  const [info] = await h.pageFiles(page);
  const fields = h.flowFields({ ...info, forceChunkSize: true });
  await forgotten(server, fields);
  await meanwhile();
  const resumedAt = w.sent.length;
  await page.getByRole("button", { name: `Resume ${name}` }).click();
  return { info, fields, resumedAt };
}

test("the server fails an upload: the page shows why, forgets it, and the file chosen again uploads anew", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("recovery-failed"), "lost.bin", 2 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openPage(server);
  const staging = path.join(server.dataDir, "staging");
  const stagedBefore = new Set(fs.readdirSync(staging));
  await page.setInputFiles("#pick-files", f.path);
  await h.until("2 chunks acknowledged", () => w.acked.length >= 2);
  const [first] = await h.pageFiles(page);
  assert.equal((await savedIdentifiers(page)).length, 1, "the identifier is kept while the file uploads");

  // Storage loses the bytes behind the server's back: the upload's staging
  // file goes. Every chunk still gets 200; the assembly finds the bytes
  // missing and the server records the upload failed, with the reason.
  const parts = fs.readdirSync(staging).filter((n) => n.endsWith(".part") && !stagedBefore.has(n));
  assert.equal(parts.length, 1, `one staging file: ${parts}`);
  fs.rmSync(path.join(staging, parts[0]));

  await h.waitFinished(page, 1, 30_000);
  const st = await h.status(server, h.flowFields({ ...first, forceChunkSize: true }));
  assert.equal(st.state, "failed");
  assert.ok(st.error, "the server says why");
  const [row] = await h.pageFiles(page);
  assert.equal(row.state, "failed", row.text);
  assert.equal(row.text, `The server could not assemble the file: ${st.error}. Choose the file again to upload it anew.`);
  assert.ok((await announced(page)).includes(`lost.bin: ${row.text}`), "the failure is announced");
  assert.deepEqual(await savedIdentifiers(page), [], "the failed file's identifier is forgotten");

  // Chosen again (the failed row still on the page), it is a new upload.
  const againAt = w.sent.length;
  await page.setInputFiles("#pick-files", f.path);
  await h.waitFinished(page, 2, 30_000);
  const rows = await h.pageFiles(page);
  const again = rows.find((r) => r.identifier !== first.identifier);
  assert.ok(again, `a second row under a new identifier: ${JSON.stringify(rows)}`);
  assert.match(again.identifier, /^[0-9a-f]{32}$/);
  assert.equal(again.state, "complete", again.text);
  const done = await h.waitComplete(server, h.flowFields({ ...again, forceChunkSize: true }));
  assert.equal(again.location, done.location);
  assert.equal(await h.finishedSha256(server, done.location, f.name), f.sha256, "the file chosen again is byte-exact");
  eachOnce(w.sent.slice(againAt), chunks, "every chunk sent once for the new upload");
  assert.deepEqual([...new Set(w.sentIds.slice(againAt))], [again.identifier]);
  assert.deepEqual(await savedIdentifiers(page), []);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a pause across the server's expiry: the page finds the chunks the server lacks and sends them again", { timeout: 60_000 }, async (t) => {
  const f = h.makeFile(h.tmpDir("recovery-expired"), "expired.bin", 2 * MiB);
  const chunks = f.size / CHUNK;
  let server = await h.startServer({ env: SHORT_EXPIRY });
  t.after(() => server.kill());
  const { page, w } = await openPage(server);
  await page.setInputFiles("#pick-files", f.path);
  // Paused until the server has forgotten the chunks sent so far. On resume
  // flow.js sends only the chunks it had not finished: they start a new
  // upload on the server, which never gets the earlier ones. Meanwhile the
  // server is started again with its default expiry, so that the new upload
  // cannot expire before the page has noticed what it lacks, however slow
  // the machine: what the page sends is then exactly what was lost.
  const { resumedAt } = await pauseAcrossExpiry(server, page, w, "expired.bin", async () => {
    await server.kill();
    server = await h.startServer({ dataDir: server.dataDir, port: server.port });
  });

  await h.waitFinished(page, 1, 40_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  const [row] = await h.pageFiles(page);
  assert.match(row.text, /^Complete: 2\.0 MiB, saved as .+ · after sending again what the server had lost$/);
  assert.deepEqual(await recoveries(page), [1], "one recovery");
  const said = (await announced(page)).find((x) => x.includes("the server lost"));
  assert.match(said ?? "", /^expired\.bin: the server lost \d+ of 16 pieces \(the upload expired there while it waited\); sending them again\.$/);
  // After the resume every chunk went exactly once: those flow.js had not
  // finished, then, after testing every chunk again, exactly the others.
  eachOnce(w.sent.slice(resumedAt), chunks, "after the resume, each chunk POSTed once");
  assert.deepEqual(w.statuses.filter((s) => s !== 200), []);
  assert.deepEqual(await savedIdentifiers(page), []);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the upload expires again while the page waits for its status: the page sends the whole file again", { timeout: 60_000 }, async (t) => {
  const f = h.makeFile(h.tmpDir("recovery-unknown"), "forgotten.bin", 1 * MiB);
  const chunks = f.size / CHUNK;
  const server = await h.startServer({ env: SHORT_EXPIRY });
  t.after(() => server.kill());
  const { page, w } = await openPage(server);
  // The status answers are held back until the server has forgotten the
  // upload (they are real answers, only late: as from a tab put to sleep).
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  let asked = 0;
  await page.route((u) => u.pathname === "/upload/status", async (route) => {
    asked++;
    await released;
    try { await route.continue(); } catch { /* the page went away */ }
  });
  await page.setInputFiles("#pick-files", f.path);
  const { fields } = await pauseAcrossExpiry(server, page, w, "forgotten.bin");

  await h.until("the page to ask for the status", () => asked > 0, 30_000);
  await forgotten(server, fields); // the second upload, short of the first's chunks, expires too
  const releasedAt = w.sent.length;
  release();

  await h.waitFinished(page, 1, 40_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  assert.deepEqual(await recoveries(page), [1]);
  assert.ok((await announced(page)).includes(
    "forgotten.bin: the server no longer had this upload (it expired there); sending the whole file again."));
  eachOnce(w.sent.slice(releasedAt), chunks, "the whole file sent again, each chunk once");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a server that keeps losing chunks: the page sends them again three times at most, then says so", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("recovery-bound"), "stuck.bin", 512 * KiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openPage(server);
  // Injected: the status always says one chunk is missing (the server itself
  // has the whole file, so each test of a chunk answers 200).
  let asked = 0;
  await page.route((u) => u.pathname === "/upload/status", (route) => {
    asked++;
    return route.fulfill({
      status: 200, contentType: "application/json",
      body: JSON.stringify({ state: "receiving", received: chunks - 1, total: chunks }),
    });
  });
  await page.setInputFiles("#pick-files", f.path);
  await h.waitFinished(page, 1, 30_000);

  const [row] = await h.pageFiles(page);
  assert.equal(row.state, "failed");
  assert.equal(row.text, "The server lost part of this upload again after 3 attempts to send it the missing pieces. " +
    "Choose the file again to upload it anew.");
  assert.deepEqual(await recoveries(page), [3]);
  // Each pass tests every chunk; the server has them all, so none is sent twice.
  assert.equal(w.gets, 4 * chunks, "the first pass and three more tested each chunk");
  eachOnce(w.sent, chunks, "each chunk POSTed once");
  assert.equal(asked, 4 * 3, "three answers in a row for each of the four passes");
  assert.deepEqual(await savedIdentifiers(page), []);
  // And then nothing more.
  const [gets, posts, asks] = [w.gets, w.posts, asked];
  await h.sleep(1500);
  assert.deepEqual([w.gets, w.posts, asked], [gets, posts, asks], "no request after the page gave up");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
