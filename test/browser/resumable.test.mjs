// Resumable.js 1.1.0 (from npm, unchanged) in Chromium against `make run`'s
// server, with no server configuration: its defaults, octet, a
// parameterNamespace, pause and resume, a page reload, and a file begun by
// one library and finished by the other. Every finished file is compared
// byte for byte (sha256) with its source. (dev.test.mjs runs its defaults
// against `make dev`; statuses.test.mjs has its retry rules.)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./helpers.mjs";
import { openLibPage, startUploader, waitLibRun } from "./libs.mjs";
import { withResumable } from "./scenarios.mjs";

const { MiB, KiB } = h;
const CHUNK = 128 * KiB;

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([h.startServer(), h.launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.kill();
});

test("Resumable.js defaults: 1 B, chunkSize, chunkSize+1, 2×chunkSize−1, 50 MiB and a folder arrive intact, cross-origin; it refuses 0 B itself", { timeout: 150_000 }, async () => {
  const { folder } = await withResumable(browser, server, { label: "defaults" });
  const events = server.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "upload completed");
  for (const f of folder) {
    assert.ok(events.some((e) => e.detail?.relativePath === f.rel), `completion event for ${f.rel}`);
  }
});

test("Resumable.js method: octet (with minFileSize: 0, so the 0 B file goes too): the edge sizes and a folder arrive intact", { timeout: 90_000 }, async () => {
  await withResumable(browser, server, { label: "octet", opts: { method: "octet", minFileSize: 0 }, big: false });
});

test("Resumable.js parameterNamespace (multipart and octet, forceChunkSize): the prefixed fields and file part are understood", { timeout: 90_000 }, async () => {
  await withResumable(browser, server, { label: "ns-multipart", opts: { parameterNamespace: "upload_", forceChunkSize: true, minFileSize: 0 }, big: false });
  await withResumable(browser, server, { label: "ns-octet", opts: { parameterNamespace: "up[", method: "octet", chunkSize: 256 * KiB }, big: false });
});

/** settled waits until the server's count of an upload stops moving. */
async function settled(fields) {
  let last = -1;
  return h.until("the server's chunk count to settle", async () => {
    const st = await h.status(server, fields);
    const same = st.received === last;
    last = st.received;
    await h.sleep(250);
    return same && st;
  }, 10_000, 0);
}

function countBy(list) {
  const m = new Map();
  for (const v of list) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

/** openWatched opens a page with Resumable.js whose chunk POSTs are held back delayMs. */
async function openWatched(delayMs) {
  let w;
  const page = await openLibPage(browser, `${server.url}/`, async (p) => { w = await h.watchUploads(p, { delayMs }); });
  return { page, w };
}

test("Resumable.js pause() and upload(), file.pause(): nothing is sent while paused, and it carries on", { timeout: 90_000 }, async () => {
  const f = h.makeFile(h.tmpDir("r-pause"), "pause.bin", 6 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openWatched(80);
  await startUploader(page, { id: "up", lib: "resumable", opts: { target: `${server.url}/upload`, chunkSize: CHUNK } });
  await page.setInputFiles("#up", f.path);

  const quiet = async (what) => {
    await h.sleep(300); // requests cut off by the pause end
    const posts = w.posts, acked = w.acked.length;
    await h.sleep(1200);
    assert.equal(w.posts, posts, `no POST while paused (${what})`);
    assert.equal(w.acked.length, acked);
  };
  await h.until("8 chunks acknowledged", () => w.acked.length >= 8);
  await page.evaluate(() => window.uploaders.up.pause()); // aborts the chunks in flight
  await quiet("pause()");
  await page.evaluate(() => window.uploaders.up.upload());

  await h.until("24 chunks acknowledged", () => w.acked.length >= 24);
  await page.evaluate(() => window.uploaders.up.files[0].pause(true)); // lets the chunks in flight finish
  await quiet("file.pause(true)");
  await page.evaluate(() => { const u = window.uploaders.up; u.files[0].pause(false); u.upload(); });

  const run = await waitLibRun(page, "up", 1, { timeoutMs: 60_000 });
  const st = await h.waitComplete(server, h.resumableFields({ ...run.done["pause.bin"], chunkSize: CHUNK }));
  assert.equal(await h.finishedSha256(server, st.location, f.name), f.sha256);
  // Every chunk went at least once, and only those cut off by pause() (at
  // most 3 in flight) went again.
  const counts = countBy(w.sent);
  assert.equal(counts.size, chunks, "every chunk sent");
  const again = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  assert.ok(again <= 3, `${again} chunks sent twice, ${w.posts} POSTs for ${chunks} chunks`);
  assert.equal(w.posts, chunks + again);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("Resumable.js after a page reload: the same file chosen again sends only the chunks the server lacks", { timeout: 90_000 }, async () => {
  const f = h.makeFile(h.tmpDir("r-reload"), "reload.bin", 8 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openWatched(80);
  const start = () => startUploader(page, { id: "up", lib: "resumable", opts: { target: `${server.url}/upload`, chunkSize: CHUNK } });
  await start();
  await page.setInputFiles("#up", f.path);
  await h.until("16 chunks acknowledged", () => w.acked.length >= 16);
  const ackedBefore = new Set(w.acked);

  await page.reload();
  await page.addScriptTag({ path: h.resumableJsPath });
  const fields = h.resumableFields({ identifier: `${f.size}-reloadbin`, name: f.name, size: f.size, chunkSize: CHUNK });
  const stored = await settled(fields);
  assert.equal(stored.state, "receiving");
  assert.ok(stored.received >= ackedBefore.size, `the server kept ${stored.received} of ${ackedBefore.size} acknowledged chunks`);
  assert.ok(stored.received < chunks);

  const sentIndex = w.sent.length;
  await start();
  await page.setInputFiles("#up", f.path);
  const run = await waitLibRun(page, "up", 1, { timeoutMs: 60_000 });
  const st = await h.waitComplete(server, fields);
  assert.equal(run.done["reload.bin"].identifier, fields.resumableIdentifier);
  assert.equal(await h.finishedSha256(server, st.location, f.name), f.sha256);
  const sentAfter = w.sent.slice(sentIndex);
  assert.deepEqual(sentAfter.filter((n) => ackedBefore.has(n)), [], "no chunk acknowledged before the reload was sent again");
  assert.equal(sentAfter.length, chunks - stored.received, "POSTs after the reload = chunks the server lacked");
  assert.equal(new Set(sentAfter).size, sentAfter.length, "each of them once");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a file begun by flow.js is finished by Resumable.js after a reload, and the other way round: one upload, byte-exact", { timeout: 120_000 }, async () => {
  const dir = h.tmpDir("cross");
  for (const [first, second] of [["flow", "resumable"], ["resumable", "flow"]]) {
    const f = h.makeFile(dir, `${first}-first.bin`, 6 * MiB + 5);
    const chunks = Math.floor(f.size / CHUNK); // both libraries' default: forceChunkSize false
    const { page, w } = await openWatched(80);
    const start = (lib) => startUploader(page, { id: "up", lib, opts: { target: `${server.url}/upload`, chunkSize: CHUNK } });
    await start(first);
    await page.setInputFiles("#up", f.path);
    await h.until("12 chunks acknowledged", () => w.acked.length >= 12);

    await page.reload();
    await page.addScriptTag({ path: h.resumableJsPath });
    const file = { identifier: `${f.size}-${f.name.replace(/[^0-9a-zA-Z_-]/g, "")}`, name: f.name, size: f.size, chunkSize: CHUNK };
    const stored = await settled(h.flowFields(file));
    assert.equal(stored.state, "receiving");
    assert.ok(stored.received >= 12 && stored.received < chunks, `${stored.received} of ${chunks} chunks stored`);
    // The same upload in the other library's names.
    assert.deepEqual(await h.status(server, h.resumableFields(file)), stored);

    const sentIndex = w.sent.length;
    await start(second);
    await page.setInputFiles("#up", f.path);
    const run = await waitLibRun(page, "up", 1, { timeoutMs: 60_000 });
    assert.equal(run.done[f.name].identifier, file.identifier, `${second} names the file as ${first} did`);
    const st = await h.waitComplete(server, second === "flow" ? h.flowFields(file) : h.resumableFields(file));
    assert.equal(st.total, chunks);
    assert.equal(await h.finishedSha256(server, st.location, f.name), f.sha256, `${first} then ${second}: sha256`);
    const sentAfter = w.sent.slice(sentIndex);
    assert.equal(sentAfter.length, chunks - stored.received, `${second} sent only the chunks ${first} had not`);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  }
});

test("Resumable.js sees the server's refusals in words: its fileError carries flowgate's JSON error", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("r-words"), "words.bin", 1000);
  const page = await openLibPage(browser, `${server.url}/`);
  await startUploader(page, {
    id: "up", lib: "resumable", opts: { target: `${server.url}/upload` },
    fnOpts: { generateUniqueIdentifier: "() => 'a/b'" },
  });
  await page.setInputFiles("#up", f.path);
  const run = await waitLibRun(page, "up", 1, { allowErrors: true });
  assert.deepEqual(JSON.parse(run.errors["words.bin"]), { error: "resumableIdentifier must not contain / or \\" });
  await page.context().close();
});
