// The upload page: flow.js sends files in chunks to flowgate, then the page
// follows the server's status until each file is assembled. Plain script, no
// build step, no framework.
//
// The page follows the server's data path (GET <api>/config): "proxy", every
// chunk POSTed to the API, or "direct", every chunk PUT straight into the
// bucket with a URL the API signs (direct.js). It starts on the proxy path
// and switches as soon as the answer says so (before anyone has chosen a
// file, in practice; a file already under way goes on as it began, which
// the server takes too).
//
// Query parameters (all optional):
//   ?api=https://.../upload   the upload API (overrides config.js apiUrl,
//                             unless config.js sets allowApiParam: false)
//   ?chunkSize=<bytes>        bytes per request (overrides config.js): at most
//                             4 MiB on the proxy path, at least 5 MiB direct
(function () {
  "use strict";

  var MiB = 1024 * 1024;
  // The Lambda request limit: a 4 MiB chunk is about 5.6 MB once base64-encoded,
  // under API Gateway's 6 MB. Never send more than this in one request.
  var MAX_CHUNK = 4 * MiB;

  var config = window.FLOWGATE_CONFIG || {};
  var params = new URLSearchParams(location.search);
  var api = (config.allowApiParam !== false && params.get("api")) || config.apiUrl || "/upload";
  var chunkSize = sizeParam(params.get("chunkSize")) || sizeParam(config.chunkSize) || MAX_CHUNK;
  var headers = config.headers || {};

  // Chunk retries: a network error, 503 (storage busy, server restarting) or
  // 408 is retried up to MAX_RETRIES times per chunk, waiting longer each time
  // (see retryDelay). When those run out the file waits and starts again by
  // itself, skipping every chunk the server already has.
  var MAX_RETRIES = 6;
  // Answers that no retry can fix. flow.js's defaults are 404, 413, 415, 500
  // and 501; flowgate also answers 400 (malformed), 401/403 (not allowed) and
  // 409 (same identifier, different file) for requests that would fail again.
  var PERMANENT = [400, 401, 403, 404, 409, 413, 415, 500, 501];

  var $ = function (id) { return document.getElementById(id); };
  $("api-url").textContent = resolve(api).href;
  $("chunk-size").textContent = human(chunkSize);

  var flow = new Flow({
    // The proxy path's options; the direct path's replace some (useDirect).
    target: api,
    headers: headers,
    // Every request stays under the Lambda limit: chunks of at most
    // chunkSize (<= 4 MiB, see MAX_CHUNK above) and, with forceChunkSize,
    // the last chunk is never larger than the others.
    chunkSize: chunkSize,
    forceChunkSize: true,
    simultaneousUploads: 3,
    testChunks: true,              // resume: a GET per chunk, skip those the server has
    maxChunkRetries: MAX_RETRIES,
    chunkRetryInterval: retryDelay(0), // replaced before each retry: see fileRetry
    permanentErrors: PERMANENT,
    generateUniqueIdentifier: identifierFor,
    // Each chunk goes with the SHA-256 of its bytes (see "Chunk checksums").
    preprocess: hashChunk,
    query: checksumFields,
  });

  if (!flow.support) {
    $("unsupported").hidden = false;
    $("drop").hidden = true;
    return;
  }

  // --- Chunk checksums ------------------------------------------------------
  // Each chunk is sent with the SHA-256 of its bytes (field checksumSha256,
  // base64): the server checks the chunk against it as it arrives and
  // refuses one damaged on the way with 422, which flow.js sends again (one
  // of its chunk retries). flow.js 2.14.1 runs the preprocess option once
  // per chunk, before reading, testing and sending it, and waits for
  // preprocessFinished; the query option then adds the digest to the
  // chunk's POST (not to its test GET, which has no bytes to check).
  // WebCrypto exists only in secure contexts (https, localhost): elsewhere
  // chunks go without a digest, as they would from any flow.js page.
  function hashChunk(chunk) {
    var subtle = window.crypto && window.crypto.subtle;
    if (!subtle) { chunk.preprocessFinished(); return; }
    var blob = chunk.fileObj.file.slice(chunk.startByte, chunk.endByte);
    readBlob(blob)
      .then(function (bytes) { return subtle.digest("SHA-256", bytes); })
      .then(function (digest) { chunk.flowgateSha256 = base64(new Uint8Array(digest)); })
      .catch(function () { delete chunk.flowgateSha256; })
      .then(function () { chunk.preprocessFinished(); });
  }

  function checksumFields(file, chunk, isTest) {
    return !isTest && chunk && chunk.flowgateSha256 ? { checksumSha256: chunk.flowgateSha256 } : {};
  }

  function readBlob(blob) {
    if (blob.arrayBuffer) { return blob.arrayBuffer(); }
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(r.result); };
      r.onerror = function () { reject(r.error); };
      r.readAsArrayBuffer(blob);
    });
  }

  function base64(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s);
  }

  // --- Identifiers ----------------------------------------------------------
  // flow.js's default identifier is size-filename, so two visitors uploading
  // "photo.jpg" of the same size would share one upload. Each file gets a
  // random identifier instead, remembered in localStorage under the file's
  // fingerprint (path, size, modification time), so that choosing the same
  // file after a reload finds the same upload and resumes it. Once the file
  // is complete, or has failed, the entry is forgotten: choosing it again is
  // a new upload. (Kept after a failure, the identifier would bring the file
  // back to the same dead upload, and flow.js ignores a file chosen again
  // while one with its identifier is still on the page.)
  var ID_PREFIX = "flowgate:id:";
  var PENDING_KEY = "flowgate:pending";
  var KEEP_MS = 7 * 24 * 3600 * 1000;

  function fingerprint(file) {
    var path = file.relativePath || file.webkitRelativePath || file.name;
    return ID_PREFIX + JSON.stringify([path, file.size, file.lastModified || 0]);
  }

  function identifierFor(file) {
    var key = fingerprint(file);
    var saved = readJSON(key);
    if (saved && typeof saved.id === "string" && /^[0-9a-f]{32}$/.test(saved.id)) {
      return saved.id;
    }
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    var id = Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
    writeJSON(key, { id: id, t: Date.now() });
    return id;
  }

  function forgetIdentifier(file) {
    try { localStorage.removeItem(fingerprint(file.file)); } catch (e) { /* storage unavailable */ }
  }

  // Uploads started but not finished, shown after a reload so the visitor
  // knows what to choose again.
  function pending() { return readJSON(PENDING_KEY) || {}; }
  function setPending(p) {
    if (Object.keys(p).length) { writeJSON(PENDING_KEY, p); } else { removeKey(PENDING_KEY); }
  }
  function rememberPending(file) {
    var p = pending();
    p[file.uniqueIdentifier] = { path: file.relativePath, size: file.size, t: Date.now() };
    setPending(p);
  }
  function forgetPending(file) {
    var p = pending();
    delete p[file.uniqueIdentifier];
    setPending(p);
  }

  function pruneStorage() {
    var now = Date.now(), p = pending();
    Object.keys(p).forEach(function (id) { if (!(now - p[id].t < KEEP_MS)) { delete p[id]; } });
    setPending(p);
    storageKeys().forEach(function (k) {
      if (k && k.indexOf(ID_PREFIX) === 0) {
        var v = readJSON(k);
        if (!v || !(now - v.t < KEEP_MS)) { removeKey(k); }
      }
    });
  }

  function showUnfinished() {
    var p = pending(), ids = Object.keys(p);
    ids = ids.filter(function (id) { return !flow.getFromUniqueIdentifier(id); });
    $("unfinished").hidden = ids.length === 0;
    var list = $("unfinished-list");
    list.textContent = "";
    ids.slice(0, 8).forEach(function (id) {
      var li = document.createElement("li");
      li.textContent = p[id].path + " (" + human(p[id].size) + ")";
      list.appendChild(li);
    });
    if (ids.length > 8) {
      var more = document.createElement("li");
      more.textContent = "and " + (ids.length - 8) + " more";
      list.appendChild(more);
    }
  }

  $("forget-unfinished").addEventListener("click", function () {
    var p = pending(), gone = {};
    Object.keys(p).forEach(function (id) { if (!flow.getFromUniqueIdentifier(id)) { gone[id] = true; delete p[id]; } });
    setPending(p);
    // Their identifiers too: choosing one of those files again starts afresh.
    storageKeys().forEach(function (k) {
      var v = k.indexOf(ID_PREFIX) === 0 && readJSON(k);
      if (v && gone[v.id]) { removeKey(k); }
    });
    showUnfinished();
    $("choose-files").focus();
  });

  pruneStorage();
  showUnfinished();

  // --- Choosing files -------------------------------------------------------
  var drop = $("drop");
  flow.assignDrop(drop);
  flow.assignBrowse($("pick-files"));
  flow.assignBrowse($("pick-folder"), true);
  $("choose-files").addEventListener("click", function () { $("pick-files").click(); });
  $("choose-folder").addEventListener("click", function () { $("pick-folder").click(); });
  var dragDepth = 0;
  drop.addEventListener("dragenter", function () { dragDepth++; drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { if (--dragDepth <= 0) { dragDepth = 0; drop.classList.remove("over"); } });
  drop.addEventListener("drop", function () { dragDepth = 0; drop.classList.remove("over"); });
  // A file dropped beside the drop zone must not replace the page.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });

  // --- Per-file state -------------------------------------------------------
  // state: uploading | paused | retrying | waiting (transient error, retries
  // later by itself) | assembling | complete | failed (permanent).
  var entries = {};

  flow.on("filesSubmitted", function (files) {
    files.forEach(function (file) {
      entries[file.uniqueIdentifier] = makeEntry(file);
      rememberPending(file);
    });
    showUnfinished();
    $("uploads").hidden = false;
    flow.upload();
    render();
  });

  flow.on("fileProgress", function (file) {
    var e = entries[file.uniqueIdentifier];
    if (e && (e.state === "retrying" || e.state === "uploading")) { e.state = "uploading"; e.message = ""; }
    render();
  });

  flow.on("fileRetry", function (file, chunk) {
    // Fired just before flow.js schedules the chunk again, and it reads
    // chunkRetryInterval right after: this makes the wait grow per chunk.
    flow.opts.chunkRetryInterval = retryDelay(chunk.retries);
    if (direct) { direct.retried(file, chunk); }
    guardRetry(file, chunk);
    var e = entries[file.uniqueIdentifier];
    if (e && !file.paused) {
      e.state = "retrying";
      e.message = "Connection problem; trying again (" + (chunk.retries + 1) + " of " + MAX_RETRIES + ")…";
    }
    render();
  });

  // flow.js 2.14.1 does not cancel a chunk's retry timer when its file is
  // paused or fails: the chunk would be sent while paused, or, once the file
  // has failed and been reset, sent as part of no file (flowTotalChunks 0),
  // and its refusal would fail the file's next attempt. A chunk that waits
  // for a retry therefore only goes if its file is running and still has it;
  // otherwise it goes back to pending, to be sent when the file resumes.
  function guardRetry(file, chunk) {
    if (chunk.flowgateGuard) { return; }
    chunk.flowgateGuard = true;
    var send = chunk.send;
    chunk.send = function () {
      if (file.paused || file.chunks.indexOf(chunk) < 0) {
        chunk.pendingRetry = false;
        return;
      }
      return send.apply(chunk, arguments);
    };
  }

  flow.on("fileSuccess", function (file) {
    var e = entries[file.uniqueIdentifier];
    if (!e) { return; }
    e.state = "assembling";
    e.message = "";
    render();
    follow(e, 0);
  });

  flow.on("fileError", function (file, message, chunk) {
    var e = entries[file.uniqueIdentifier];
    if (!e) { return; }
    // A refusal of the API's (chunk.flowgateStatus: a URL request, on the
    // direct path) or of whatever the chunk went to (the API, or S3).
    var refused = chunk && chunk.flowgateStatus;
    var status = refused || (chunk && chunk.xhr ? chunk.xhr.status : 0);
    var text = serverMessage(message);
    if ((refused ? PERMANENT : flow.opts.permanentErrors).indexOf(status) >= 0) {
      e.state = "failed";
      e.message = refusal(status, text);
      forgetPending(file);
      forgetIdentifier(file);
      announce(file.relativePath + ": " + e.message);
    } else {
      // Out of chunk retries: the network or the server is down for longer.
      // Wait, then start the file again; stored chunks are skipped.
      e.state = "waiting";
      e.waits++;
      var delay = Math.min(15000 * e.waits, 120000);
      e.retryAt = Date.now() + delay;
      e.message = (status ? "The server answered " + status + (text ? " (" + text + ")" : "") : "The server cannot be reached") +
        ".";
      e.timer = setTimeout(function () { retryFile(e); }, delay);
      announce(file.relativePath + ": upload interrupted, will try again");
    }
    render();
  });

  flow.on("progress", render);
  flow.on("complete", render);

  function makeEntry(file) {
    var li = document.createElement("li");
    li.className = "file";
    li.innerHTML =
      '<div class="file-head"><span class="name"></span><span class="size"></span></div>' +
      '<progress max="1" value="0"></progress>' +
      '<div class="file-foot"><p class="status"></p><div class="actions">' +
      '<button type="button" class="secondary small pause"></button>' +
      '<button type="button" class="secondary small retry">Retry now</button>' +
      '<button type="button" class="secondary small cancel">Cancel</button>' +
      "</div></div>";
    var name = file.relativePath || file.name;
    li.querySelector(".name").textContent = name;
    li.querySelector(".size").textContent = human(file.size);
    li.querySelector("progress").setAttribute("aria-label", "Progress of " + name);
    var e = {
      file: file, li: li, state: "uploading", message: "", result: null, waits: 0, timer: null, retryAt: 0, shown: 0,
      following: null, stalls: 0, recoveries: 0, note: "", // see follow and recover
      meter: new Meter(), speed: 0,
      bar: li.querySelector("progress"), status: li.querySelector(".status"),
      pause: li.querySelector(".pause"), retry: li.querySelector(".retry"), cancel: li.querySelector(".cancel"),
    };
    e.retry.setAttribute("aria-label", "Retry " + name + " now");
    e.pause.onclick = function () {
      if (file.paused) { resumeFile(e); } else { pauseFile(e); }
      render();
    };
    e.retry.onclick = function () { retryFile(e); };
    e.cancel.onclick = function () { removeEntry(e, true); };
    $("files").appendChild(li);
    return e;
  }

  function pauseFile(e) {
    if (e.state === "complete" || e.state === "failed" || e.state === "assembling") { return; }
    clearTimeout(e.timer);
    e.file.pause();
    e.state = "paused";
  }

  function resumeFile(e) {
    if (e.state !== "paused") { return; }
    e.state = "uploading";
    e.message = "";
    if (e.file.error) { retryFile(e); } else { e.file.resume(); }
  }

  function retryFile(e) {
    clearTimeout(e.timer);
    if (!entries[e.file.uniqueIdentifier] || e.state === "complete" || e.state === "failed") { return; }
    e.state = "uploading";
    e.message = "";
    e.file.paused = false;
    e.file.retry();
    render();
  }

  // removeEntry drops a file from the page; cancelled uploads are also
  // forgotten, so choosing the file again starts from scratch.
  function removeEntry(e, cancelled) {
    clearTimeout(e.timer);
    e.file.cancel();
    if (cancelled && e.state !== "complete") {
      forgetIdentifier(e.file);
      forgetPending(e.file);
    }
    delete entries[e.file.uniqueIdentifier];
    e.li.remove();
    if (!Object.keys(entries).length) { $("uploads").hidden = true; $("choose-files").focus(); }
    showUnfinished();
    render();
  }

  // --- Following the server after flow.js is done ----------------------------
  // The last chunk makes the upload ready; the server then assembles the file.
  // Ask until it is complete (size and location) or failed (why).
  //
  // flow.js tests a chunk only before it first sends it. If the server's
  // record of the upload expired while the file was paused (or the tab
  // slept), the chunks sent after that start a new upload there, which never
  // gets the chunks sent before: the status stays "receiving" with chunks
  // missing, or, once that record expires too, says "unknown". The page then
  // starts the file again (flow.js's retry: new chunks, each tested again),
  // so exactly the chunks the server lacks are sent, at most MAX_RECOVERIES
  // times per file; after that the file fails and says why.
  var MAX_RECOVERIES = 3;
  // A stall must be seen on this many answers in a row (about 0.6 s) before
  // the page acts on it: a slow or lagging read costs a little waiting, not
  // a whole pass of test requests.
  var STALL_ANSWERS = 3;

  function follow(e, attempt, token) {
    if (!token) {
      // A newer follow (after a recovery) or a recovery ends this one.
      token = e.following = {};
      e.stalls = 0;
    }
    var file = e.file;
    var url = new URL(serverURL("/status"));
    var q = url.searchParams;
    q.set("flowIdentifier", file.uniqueIdentifier);
    q.set("flowFilename", file.name);
    q.set("flowRelativePath", file.relativePath);
    q.set("flowTotalSize", file.size);
    q.set("flowChunkSize", file.chunkSize);
    q.set("flowTotalChunks", file.chunks.length || Math.max(Math.ceil(file.size / file.chunkSize), 1));
    var current = function () { return entries[file.uniqueIdentifier] === e && e.following === token; };
    var again = function () {
      if (!current()) { return; }
      if (attempt >= 400) {
        e.message = "Uploaded; the server is still assembling it. Check again later.";
        render();
        return;
      }
      setTimeout(function () { follow(e, attempt + 1, token); }, Math.min(200 * (attempt + 1), 3000));
    };
    fetch(url.href, { cache: "no-store", headers: typeof headers === "function" ? headers(file) : headers })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
      })
      .then(function (res) {
        if (!current()) { return; }
        var st = res.body || {};
        if (!res.ok) {
          if (PERMANENT.indexOf(res.status) >= 0) { finish(e, "failed", refusal(res.status, st.error || "")); } else { again(); }
        } else if (st.state === "complete") {
          e.result = { size: st.size, location: st.location };
          finish(e, "complete", "");
        } else if (st.state === "failed") {
          finish(e, "failed", "The server could not assemble the file: " + (st.error || "unknown error") +
            ". Choose the file again to upload it anew.");
        } else if (stalled(st) && !trailing(e, st)) {
          if (++e.stalls >= STALL_ANSWERS) { recover(e, st); } else { again(); }
        } else {
          e.stalls = 0;
          if (!stalled(st)) { e.trailSince = 0; }
          again();
        }
      })
      .catch(again);
  }

  // trailing tells whether, on the direct path, a status short of chunks may
  // only be behind the notifications of chunks S3 has: while the count
  // grows, or for DIRECT_STALL_MS since it last did.
  function trailing(e, st) {
    if (!direct || st.state !== "receiving") { return false; }
    var now = Date.now();
    if (!e.trailSince || st.received !== e.trailReceived) {
      e.trailSince = now;
      e.trailReceived = st.received;
    }
    return now - e.trailSince < DIRECT_STALL_MS;
  }

  // stalled tells whether a status, asked after flow.js sent every chunk,
  // means the server will never finish the upload by itself.
  function stalled(st) {
    return st.state === "unknown" ||
      (st.state === "receiving" && typeof st.received === "number" && typeof st.total === "number" && st.received < st.total);
  }

  // recover sends again what the server lacks (see above), or gives up.
  function recover(e, st) {
    e.following = null;
    var name = e.file.relativePath;
    if (e.recoveries >= MAX_RECOVERIES) {
      finish(e, "failed", "The server lost part of this upload again after " + MAX_RECOVERIES +
        " attempts to send it the missing pieces. Choose the file again to upload it anew.");
      return;
    }
    e.recoveries++;
    var why;
    if (st.state === "unknown") {
      e.note = "Sending it again: the server no longer had it";
      why = "the server no longer had this upload (it expired there); sending the whole file again.";
    } else {
      var missing = st.total - st.received;
      e.note = "Sending again " + missing + " piece" + (missing === 1 ? "" : "s") + " the server lost";
      why = "the server lost " + missing + " of " + st.total + " pieces (the upload expired there while it waited); sending them again.";
    }
    announce(name + ": " + why);
    e.state = "uploading";
    e.message = "";
    e.shown = 0; // the bar follows the new pass, not the finished one
    e.file.paused = false;
    e.file.retry(); // new chunks, each tested: only those the server lacks are sent
    render();
  }

  function finish(e, state, message) {
    e.following = null;
    e.state = state;
    e.message = message;
    forgetPending(e.file);
    // A failed upload cannot be continued: forget its identifier, so that
    // choosing the file again starts a new upload.
    forgetIdentifier(e.file);
    announce(e.file.relativePath + (state === "complete" ? ": upload complete" : ": " + message));
    render();
  }

  // --- All files --------------------------------------------------------------
  $("pause-all").addEventListener("click", function () {
    each(function (e) { if (!e.file.paused) { pauseFile(e); } });
    render();
  });
  $("resume-all").addEventListener("click", function () {
    each(function (e) { if (e.state === "paused") { resumeFile(e); } });
    each(function (e) { if (e.state === "waiting") { retryFile(e); } });
    render();
  });
  $("cancel-all").addEventListener("click", function () {
    each(function (e) { if (e.state !== "complete" && e.state !== "failed") { removeEntry(e, true); } });
  });
  $("clear-done").addEventListener("click", function () {
    each(function (e) { if (e.state === "complete" || e.state === "failed") { removeEntry(e, false); } });
  });

  function each(fn) { Object.keys(entries).forEach(function (id) { fn(entries[id]); }); }

  // --- Rendering --------------------------------------------------------------
  // flow.js reports progress often; the page redraws at most every 100 ms.
  var renderQueued = false;
  function render() {
    if (!renderQueued) { renderQueued = true; setTimeout(draw, 100); }
  }

  // progressOf is a file's share sent, 0..1. After a failed attempt flow.js
  // resets its chunks; the bar keeps what was shown until the retry catches up.
  function progressOf(e) {
    if (e.state === "assembling" || e.state === "complete") { return 1; }
    if (e.state === "failed") { return 0; }
    if (!e.file.error) { e.shown = Math.max(e.shown, e.file.progress()); }
    return e.shown;
  }

  function draw() {
    renderQueued = false;
    var n = 0, done = 0, failed = 0, active = 0, paused = 0, total = 0, sent = 0, speed = 0, remaining = 0;
    each(function (e) {
      var f = e.file, bytes = progressOf(e) * f.size;
      n++;
      if (e.state === "failed") { failed++; } else { total += f.size; sent += bytes; }
      if (e.state === "complete") { done++; }
      if (e.state === "paused") { paused++; }
      if (e.state === "uploading" || e.state === "retrying") {
        active++;
        // A queued file's speed starts when its first bytes go.
        if (bytes > 0) { e.meter.add(bytes); } else { e.meter.reset(); }
        e.speed = e.meter.speed();
        speed += e.speed;
        remaining += f.size - bytes;
      } else {
        e.meter.reset();
        e.speed = 0;
      }
      renderEntry(e, bytes);
    });
    var bar = $("overall-bar");
    bar.value = total ? sent / total : (n && done + failed === n ? 1 : 0);
    var parts = [done + " of " + n + " file" + (n === 1 ? "" : "s") + " complete"];
    if (failed) { parts.push(failed + " failed"); }
    if (paused) { parts.push(paused + " paused"); }
    if (total) { parts.push(human(sent) + " of " + human(total) + " (" + percent(sent / total) + ")"); }
    if (active && speed > 0) {
      parts.push(human(speed) + "/s");
      if (remaining > 0) { parts.push(duration(remaining / speed) + " left"); }
    }
    $("overall").textContent = parts.join(" · ");
    $("pause-all").disabled = !active && !some("waiting");
    $("resume-all").disabled = !paused && !some("waiting");
    $("cancel-all").disabled = n === done + failed;
    $("clear-done").disabled = !done && !failed;
  }

  // Meter measures a speed over the last few seconds of samples: steadier
  // than one interval, quicker to follow a change than a long average.
  function Meter() { this.samples = []; }
  Meter.prototype.add = function (bytes) {
    var now = Date.now(), s = this.samples;
    if (s.length && now - s[s.length - 1][0] < 100) { s[s.length - 1][1] = bytes; return; }
    s.push([now, bytes]);
    while (s.length > 2 && now - s[1][0] > 5000) { s.shift(); }
  };
  Meter.prototype.speed = function () {
    var s = this.samples;
    if (s.length < 2) { return 0; }
    var dt = (s[s.length - 1][0] - s[0][0]) / 1000;
    return dt >= 0.5 ? Math.max(s[s.length - 1][1] - s[0][1], 0) / dt : 0;
  };
  Meter.prototype.reset = function () { this.samples = []; };

  function some(state) {
    return Object.keys(entries).some(function (id) { return entries[id].state === state; });
  }

  function renderEntry(e, bytes) {
    var f = e.file, text, cls = "";
    var progress = progressOf(e);
    e.bar.value = progress;
    switch (e.state) {
      case "uploading":
        if (!progress && !f.isUploading()) { text = "Queued"; break; }
        text = percent(progress) + " of " + human(f.size);
        if (e.speed > 0) {
          text += " · " + human(e.speed) + "/s";
          if (f.size > bytes) { text += " · " + duration((f.size - bytes) / e.speed) + " left"; }
        }
        if (e.note) { text = e.note + " · " + text; }
        break;
      case "paused": text = "Paused at " + percent(progress); break;
      case "retrying": text = e.message; cls = "warn"; break;
      case "waiting":
        text = e.message + " Trying again in " + duration(Math.max(0, (e.retryAt - Date.now()) / 1000)) + ".";
        cls = "warn";
        break;
      case "assembling": text = e.message || "Uploaded; the server is putting the file together…"; break;
      case "complete":
        text = "Complete: " + human(e.result.size) + (e.result.location ? ", saved as " + e.result.location : "");
        if (e.recoveries) { text += " · after sending again what the server had lost"; }
        cls = "done";
        break;
      case "failed": text = e.message; cls = "error"; break;
    }
    e.li.setAttribute("data-state", e.state);
    if (e.result && e.result.location) { e.li.setAttribute("data-location", e.result.location); }
    if (e.status.textContent !== text) { e.status.textContent = text; }
    e.status.className = "status " + cls;
    var name = f.relativePath || f.name;
    var canPause = e.state === "uploading" || e.state === "retrying" || e.state === "waiting" || e.state === "paused";
    e.pause.hidden = !canPause;
    e.pause.textContent = e.state === "paused" ? "Resume" : "Pause";
    e.pause.setAttribute("aria-label", (e.state === "paused" ? "Resume " : "Pause ") + name);
    e.retry.hidden = e.state !== "waiting";
    var finished = e.state === "complete" || e.state === "failed";
    e.cancel.textContent = finished ? "Remove" : "Cancel";
    e.cancel.setAttribute("aria-label", (finished ? "Remove " : "Cancel ") + name);
  }

  // Speeds must fall when an upload stalls, and the "trying again in"
  // countdown must move: redraw every second while anything is under way.
  setInterval(function () {
    if (some("uploading") || some("retrying") || some("waiting")) { render(); }
  }, 1000);

  // --- Helpers --------------------------------------------------------------
  function retryDelay(retries) {
    // 1 s, 2 s, 4 s, 8 s, 16 s, capped at 20 s, plus up to 0.5 s of jitter so
    // that many clients do not come back at the same instant.
    return Math.min(1000 * Math.pow(2, retries), 20000) + Math.floor(Math.random() * 500);
  }

  function refusal(status, text) {
    switch (status) {
      case 413: return "Too large: " + (text || "the server refuses files this big") + ".";
      case 401: case 403: return "Not allowed: " + (text || "the server refused the upload") + ".";
      case 409: return "Conflict: " + (text || "another upload uses this identifier") + ".";
      default: return "Refused by the server (" + status + ")" + (text ? ": " + text : "") + ".";
    }
  }

  function serverMessage(body) {
    if (!body) { return ""; }
    try {
      var v = JSON.parse(body);
      if (v && typeof v.error === "string") { return v.error; }
    } catch (e) { /* not JSON */ }
    // S3's errors are XML: <Error><Code>…</Code><Message>…</Message>…
    var m = /<Message>([^<]*)<\/Message>/.exec(body);
    if (m) { return m[1]; }
    return String(body).slice(0, 200);
  }

  var announcer = $("announce");
  function announce(text) {
    announcer.textContent = text;
  }

  function resolve(u) { return new URL(u, location.href); }

  function sizeParam(v, max) {
    var n = Number(v);
    return Number.isInteger(n) && n >= 1 ? Math.min(n, max || MAX_CHUNK) : 0;
  }

  function readJSON(key) {
    try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { return null; }
  }
  function writeJSON(key, v) {
    try { localStorage.setItem(key, JSON.stringify(v)); } catch (e) { /* private mode: no resume after reload */ }
  }
  function storageKeys() {
    var keys = [];
    try {
      for (var i = 0; i < localStorage.length; i++) { keys.push(localStorage.key(i)); }
    } catch (e) { /* storage unavailable */ }
    return keys;
  }
  function removeKey(key) {
    try { localStorage.removeItem(key); } catch (e) { /* storage unavailable */ }
  }

  function percent(x) { return Math.floor(x * 100) + "%"; }

  function human(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    bytes = Number(bytes) || 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : String(bytes)) + " " + units[i];
  }

  function duration(s) {
    s = Math.ceil(s);
    if (s >= 3600) { return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min"; }
    if (s >= 60) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    return s + " s";
  }

  // --- The data path ---------------------------------------------------------
  // GET <api>/config says how the server takes chunks; a server that does
  // not answer it (an older one) takes them at POST <api>.
  var DIRECT_MIN_CHUNK = 5 * MiB;     // S3's smallest multipart part: the assembly copies each chunk in S3
  var DIRECT_CHUNK = 8 * MiB;
  var dataPath = "proxy";
  var direct = null;                  // direct.js's hooks, on the direct path
  // On the direct path a chunk is counted when S3's notification of it
  // reaches the server, a moment after flow.js saw it stored: the status
  // may trail behind for a while before the page takes it for a loss.
  var DIRECT_STALL_MS = 20000;

  var ready = fetch(serverURL("/config"), { cache: "no-store", headers: typeof headers === "function" ? headers() : headers })
    .then(function (r) { return r.ok ? r.json() : {}; })
    .catch(function () { return {}; })
    .then(function (server) {
      if (server && server.dataPath === "direct") { useDirect(server); }
      window.flowgatePage.dataPath = dataPath;
      return dataPath;
    });

  function useDirect(server) {
    var size = sizeParam(params.get("chunkSize"), Infinity) || sizeParam(config.directChunkSize, Infinity) ||
      Math.max(DIRECT_CHUNK, server.chunkSize || 0);
    size = Math.max(size, DIRECT_MIN_CHUNK);
    if (server.maxChunkSize) { size = Math.min(size, server.maxChunkSize); }
    chunkSize = size;
    direct = window.flowgateDirect({
      api: resolve(api).href, headers: headers, chunkSize: chunkSize, crc: window.flowgateCRC64NVME,
      maxRetries: MAX_RETRIES, retryDelay: retryDelay,
    });
    Object.assign(flow.opts, direct.options);
    dataPath = "direct";
    $("chunk-size").textContent = human(chunkSize);
    $("data-path").textContent = " straight into storage";
    window.flowgatePage.chunkSize = chunkSize;
  }

  function serverURL(suffix) {
    var u = resolve(api);
    u.pathname = u.pathname.replace(/\/$/, "") + suffix;
    return u.href;
  }

  // For tests and the curious: the Flow instance and the page's view of it;
  // ready resolves to the data path once the server has said it.
  window.flowgatePage = { flow: flow, entries: entries, chunkSize: chunkSize, api: resolve(api).href, dataPath: dataPath, ready: ready };
})();
