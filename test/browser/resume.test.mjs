// Interrupted uploads on the page in web/: pause and resume, a page reload,
// the server killed with SIGKILL and started again, transient 503s. Each
// upload runs with small chunks (?chunkSize=131072) and every chunk POST
// held back a little in the browser (page.route), so that it is reliably
// caught halfway. The POSTs the page sends and the chunks the server
// acknowledges are counted: a chunk the server already has must never be
// sent again.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./helpers.mjs";

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

async function openPage(delayMs) {
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { delayMs });
  await page.goto(`${server.url}/?chunkSize=${CHUNK}`);
  return { page, w };
}

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

function assertEachChunkOnce(acked, chunks) {
  const seen = new Map();
  for (const n of acked) seen.set(n, (seen.get(n) ?? 0) + 1);
  const twice = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  const missing = Array.from({ length: chunks }, (_, i) => i + 1).filter((n) => !seen.has(n));
  assert.deepEqual({ twice, missing }, { twice: [], missing: [] }, "every chunk acknowledged exactly once");
}

test("pause and resume, per file and for all: nothing is sent while paused", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("pause"), "pause.bin", 6 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openPage(80);
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "pause.bin" });

  const quiet = async (what) => {
    await h.sleep(300); // requests cut off by the pause end
    const posts = w.posts, acked = w.acked.length;
    await h.sleep(1200);
    assert.equal(w.posts, posts, `no POST while paused (${what})`);
    assert.equal(w.acked.length, acked);
    assert.equal(await row.getAttribute("data-state"), "paused");
    assert.match(await row.locator(".status").textContent(), /^Paused at \d+%$/);
  };

  await h.until("8 chunks acknowledged", () => w.acked.length >= 8);
  await page.getByRole("button", { name: "Pause pause.bin" }).click();
  await quiet("the file's own Pause");
  await page.getByRole("button", { name: "Resume pause.bin" }).click();

  await h.until("24 chunks acknowledged", () => w.acked.length >= 24);
  await page.getByRole("button", { name: "Pause all" }).click();
  await quiet("Pause all");
  assert.match(await page.locator("#overall").textContent(), /1 paused/);
  await page.getByRole("button", { name: "Resume all" }).click();

  await h.waitFinished(page, 1, 40_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  // Resuming carries on: every chunk went at least once, and only those cut
  // off by a pause (at most 3 in flight, twice) went again.
  const counts = countBy(w.sent);
  assert.equal(counts.size, chunks, "every chunk sent");
  const again = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  assert.ok(again <= 6, `${again} chunks sent twice, ${w.posts} POSTs for ${chunks} chunks`);
  assert.equal(w.posts, chunks + again);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a page reload mid-upload resumes without resending stored chunks", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("reload"), "reload.bin", 8 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openPage(80);
  await page.setInputFiles("#pick-files", f.path);
  await h.until("16 chunks acknowledged", () => w.acked.length >= 16);
  const before = await h.pageFiles(page);
  const ackedBefore = new Set(w.acked);

  await page.reload();
  const fields = h.flowFields({ ...before[0], forceChunkSize: true });
  const stored = await settled(fields);
  assert.equal(stored.state, "receiving");
  assert.ok(stored.received >= ackedBefore.size, `the server kept ${stored.received} of ${ackedBefore.size} acknowledged chunks`);
  assert.ok(stored.received < chunks);

  // The page remembers the unfinished upload and asks for the file again.
  await page.locator("#unfinished").waitFor({ state: "visible" });
  assert.match(await page.locator("#unfinished-list").textContent(), /reload\.bin \(8\.0 MiB\)/);

  const sentIndex = w.sent.length;
  await page.setInputFiles("#pick-files", f.path);
  await h.waitFinished(page, 1, 40_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  const after = await h.pageFiles(page);
  assert.equal(after[0].identifier, before[0].identifier, "the same identifier after the reload");
  assert.equal(await page.locator("#unfinished").isVisible(), false);

  // After the reload the page sent exactly the chunks the server lacked.
  const sentAfter = w.sent.slice(sentIndex);
  assert.deepEqual(sentAfter.filter((n) => ackedBefore.has(n)), [], "no chunk acknowledged before the reload was sent again");
  assert.equal(sentAfter.length, chunks - stored.received, "POSTs after the reload = chunks the server lacked");
  assert.equal(new Set(sentAfter).size, sentAfter.length, "each of them once");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the server killed (SIGKILL) mid-upload and restarted: the page retries and finishes", { timeout: 90_000 }, async () => {
  const f = h.makeFile(h.tmpDir("kill"), "crash.bin", 10 * MiB);
  const chunks = f.size / CHUNK;
  const { page, w } = await openPage(60);
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "crash.bin" });
  await h.until("20 chunks acknowledged", () => w.acked.length >= 20);
  const [info] = await h.pageFiles(page);
  const fields = h.flowFields({ ...info, forceChunkSize: true });

  await server.kill("SIGKILL");
  const ackedBeforeKill = w.acked.length;
  await row.locator(".status", { hasText: /Connection problem; trying again \(\d of 6\)/ }).waitFor({ timeout: 15_000 });
  assert.equal(await row.getAttribute("data-state"), "retrying");
  await h.sleep(1000);

  server = await server.restart();
  // Every chunk acknowledged before the crash survived it.
  const st = await h.status(server, fields);
  assert.ok(st.received >= ackedBeforeKill, `after the restart the server has ${st.received} chunks, ${ackedBeforeKill} were acknowledged`);

  await h.waitFinished(page, 1, 60_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  assertEachChunkOnce(w.acked, chunks);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("transient 503s are retried after growing waits, then the file completes", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("retry"), "retry.bin", 300 * KiB);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page);
  // The first two POSTs get 503 (storage busy), as flowgate answers it.
  const postedAt = [];
  await page.route((u) => u.pathname === "/upload", async (route) => {
    if (route.request().method() === "POST" && postedAt.push(Date.now()) <= 2) {
      return route.fulfill({
        status: 503, headers: { "Retry-After": "1" }, contentType: "application/json",
        body: '{"error":"storage is unavailable; try again"}',
      });
    }
    return route.fallback();
  });
  // One chunk, so the retries are of the same request one after the other.
  await page.goto(`${server.url}/?chunkSize=${512 * KiB}`);
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "retry.bin" });
  await row.locator(".status", { hasText: "Connection problem; trying again (1 of 6)" }).waitFor({ timeout: 10_000 });
  await h.waitFinished(page, 1, 30_000);
  await h.checkUploaded(assert, server, page, [f]);
  assert.equal(postedAt.length, 3);
  const waits = [postedAt[1] - postedAt[0], postedAt[2] - postedAt[1]];
  assert.ok(waits[0] >= 900 && waits[1] >= 1900 && waits[1] > waits[0], `waits between retries grow: ${waits} ms`);
  assert.deepEqual(w.statuses, [503, 503, 200]);
  assert.deepEqual(w.sent, [1, 1, 1]);
  await page.context().close();
});

test("a file paused while a chunk waits to be retried sends nothing until resumed", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("pause-retry"), "pause-retry.bin", 200 * KiB);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page);
  let refused = 0;
  await page.route((u) => u.pathname === "/upload", (route) => {
    if (route.request().method() === "POST" && refused++ === 0) {
      return route.fulfill({ status: 503, contentType: "application/json", body: '{"error":"storage is unavailable; try again"}' });
    }
    return route.fallback();
  });
  await page.goto(`${server.url}/?chunkSize=${512 * KiB}`);
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "pause-retry.bin" });
  await row.locator(".status", { hasText: "trying again (1 of 6)" }).waitFor({ timeout: 10_000 });
  await page.getByRole("button", { name: "Pause pause-retry.bin" }).click();
  const posts = w.posts;
  await h.sleep(2500); // the retry was due after 1 to 1.5 s
  assert.equal(w.posts, posts, "no POST while paused, though a retry fell due");
  assert.equal(await row.getAttribute("data-state"), "paused");
  await page.getByRole("button", { name: "Resume pause-retry.bin" }).click();
  await h.waitFinished(page, 1, 20_000);
  await h.checkUploaded(assert, server, page, [f]);
  assert.deepEqual(w.statuses, [503, 200]);
  await page.context().close();
});

test("the server unreachable for minutes: the file waits, then starts again by itself", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("outage"), "outage.bin", 600 * KiB);
  const page = await h.newPage(browser);
  // The page's clock is fake, so that minutes of retries take a moment.
  await page.clock.install();
  const w = await h.watchUploads(page);
  let down = true;
  await page.route((u) => u.pathname === "/upload", (route) => (down ? route.abort("connectionrefused") : route.fallback()));
  await page.goto(`${server.url}/?chunkSize=${CHUNK}`);
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "outage.bin" });
  await row.locator(".status", { hasText: "Connection problem; trying again" }).waitFor({ timeout: 10_000 });

  // Six retries per chunk, 1 s to 20 s apart: then the file gives up waiting
  // for that chunk and says when it will start again.
  await h.until("the file to wait", async () => {
    if ((await row.getAttribute("data-state")) === "waiting") return true;
    await page.clock.fastForward(5_000);
    return false;
  }, 30_000, 0);
  assert.match(await row.locator(".status").textContent(), /^The server cannot be reached\. Trying again in \d+ s\.$/);
  assert.equal(await row.getByRole("button", { name: "Retry outage.bin now" }).isVisible(), true);
  assert.equal(await page.getByRole("button", { name: "Resume all" }).isEnabled(), true);

  down = false;
  await page.clock.fastForward(20_000);
  await h.waitFinished(page, 1, 30_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  assert.ok(w.acked.length >= f.size / CHUNK);
  // No chunk of the abandoned attempt was sent later as part of no file
  // (flowTotalChunks 0, which the server refuses with 400).
  assert.deepEqual(w.statuses.filter((s) => s !== 200), []);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
