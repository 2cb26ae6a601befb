// Drives the two client libraries, unchanged, in a page: flow.js 2.14.1 (the
// copy the demo page loads from web/vendor/) and Resumable.js 1.1.0 (added
// to the page from node_modules/resumablejs). Each uploader gets a file
// input of its own; what the library reports (files done, files failed,
// files it refused itself) is collected in the page, in window.libRuns.

import * as h from "./helpers.mjs";

/**
 * openLibPage opens the server's page (at pageUrl, e.g. http://localhost:port/
 * for another origin than the API) in a fresh context and adds Resumable.js
 * to it. It returns the page; watch its requests before calling it if needed
 * by passing setup(page).
 */
export async function openLibPage(browser, pageUrl, setup = async () => {}) {
  const page = await h.newPage(browser);
  page.dialogs = [];
  page.on("dialog", (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await setup(page);
  await page.goto(pageUrl);
  await page.addScriptTag({ path: h.resumableJsPath });
  return page;
}

/**
 * startUploader creates an uploader of lib ("flow" or "resumable") with opts
 * (functions given as source text in fnOpts, since options cross into the
 * page as JSON), with a file input #id (a folder input when folder), and
 * starts uploading whatever is chosen in it. It returns the options the
 * library ended up with.
 */
export async function startUploader(page, { id, lib, opts = {}, fnOpts = {}, folder = false }) {
  return page.evaluate(({ id, lib, opts, fnOpts, folder }) => {
    for (const [k, src] of Object.entries(fnOpts)) opts[k] = (0, eval)(`(${src})`);
    window.libRuns ??= {};
    const run = { done: {}, errors: {}, retries: 0 };
    window.libRuns[id] = run;
    const info = (f) => lib === "flow"
      ? { rel: f.relativePath, identifier: f.uniqueIdentifier, name: f.name, size: f.size, chunks: f.chunks.length }
      : { rel: f.relativePath, identifier: f.uniqueIdentifier, name: f.fileName, size: f.size, chunks: f.chunks.length };
    let u;
    if (lib === "flow") {
      u = new Flow(opts);
      u.on("filesSubmitted", () => u.upload());
    } else {
      u = new Resumable(opts);
      u.on("filesAdded", () => u.upload());
    }
    u.on("fileSuccess", (f) => { run.done[f.relativePath] = info(f); });
    u.on("fileError", (f, message) => { run.errors[f.relativePath] = String(message); });
    u.on("fileRetry", () => { run.retries++; });
    (window.uploaders ??= {})[id] = u;
    const input = document.createElement("input");
    input.type = "file";
    input.id = id;
    document.body.append(input);
    u.assignBrowse(input, folder);
    const o = lib === "flow" ? u.opts : Object.fromEntries(
      ["chunkSize", "forceChunkSize", "testChunks", "method", "parameterNamespace", "maxChunkRetries",
        "chunkRetryInterval", "permanentErrors", "minFileSize", "generateUniqueIdentifier"].map((k) => [k, u.getOpt(k)]));
    return JSON.parse(JSON.stringify({ ...o, generateUniqueIdentifier: o.generateUniqueIdentifier ?? null }));
  }, { id, lib, opts, fnOpts, folder });
}

/** libRun is what the uploader #id has reported so far. */
export function libRun(page, id) {
  return page.evaluate((id) => window.libRuns[id], id);
}

/**
 * waitLibRun waits until the uploader #id has reported n files done or
 * failed, and returns its run. Failures are an error unless allowErrors.
 */
export async function waitLibRun(page, id, n, { timeoutMs = 90_000, allowErrors = false } = {}) {
  return h.until(`${id}: ${n} files done or failed`, async () => {
    const run = await libRun(page, id);
    const errors = Object.entries(run.errors);
    if (errors.length && !allowErrors) throw new Error(`${id}: the library reported errors: ${errors.map(([f, m]) => `${f}: ${m}`).join("; ")}`);
    return Object.keys(run.done).length + errors.length >= n && run;
  }, timeoutMs, 100);
}
