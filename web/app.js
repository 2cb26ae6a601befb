// The demo page: flow.js uploading to flowgate, then following the server's
// status until the file is assembled. Plain script, no build step.
(function () {
  "use strict";

  var params = new URLSearchParams(location.search);
  var api = params.get("api") || (window.FLOWGATE_CONFIG || {}).apiUrl || "/upload";

  var flow = new Flow({
    target: api,
    // Behind API Gateway + Lambda a request is capped near 6 MB, base64
    // included: about 4.5 MiB of chunk. With forceChunkSize every chunk is at
    // most chunkSize (flow.js's default lets the last grow to 2x chunkSize).
    chunkSize: 4 * 1024 * 1024,
    forceChunkSize: true,
    simultaneousUploads: 3,
    testChunks: true,            // resume: skip chunks the server already has
    maxChunkRetries: 5,          // 503 and network errors are retried ...
    chunkRetryInterval: 2000,    // ... after a pause
    permanentErrors: [400, 401, 403, 404, 409, 413, 415, 500, 501],
    generateUniqueIdentifier: identifierFor,
  });

  if (!flow.support) {
    document.getElementById("drop").textContent = "This browser cannot upload in chunks.";
    return;
  }

  // Two visitors picking files of the same name and size must not share an
  // upload, yet a reload must find the same one again: a random id is kept
  // per file fingerprint in localStorage.
  function identifierFor(file) {
    var path = file.relativePath || file.webkitRelativePath || file.name;
    var fingerprint = ["flowgate", file.size, file.lastModified, path].join("|");
    var id = null;
    try { id = localStorage.getItem(fingerprint); } catch (e) { /* private mode */ }
    if (!id) {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      try { localStorage.setItem(fingerprint, id); } catch (e) { /* still works, without resume after reload */ }
    }
    return id;
  }

  var drop = document.getElementById("drop");
  flow.assignDrop(drop);
  flow.assignBrowse(document.getElementById("pick-files"));
  flow.assignBrowse(document.getElementById("pick-folder"), true);
  drop.addEventListener("dragover", function () { drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function () { drop.classList.remove("over"); });
  drop.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); document.getElementById("pick-files").click(); }
  });

  document.getElementById("resume-all").onclick = function () { flow.resume(); };
  document.getElementById("pause-all").onclick = function () { flow.pause(); };
  document.getElementById("cancel-all").onclick = function () {
    flow.files.slice().forEach(function (f) { f.cancel(); });
    document.getElementById("files").textContent = "";
  };

  var rows = {};
  flow.on("filesSubmitted", function (files) {
    files.forEach(addRow);
    flow.upload();
  });
  flow.on("fileProgress", function (file) { update(file); });
  flow.on("fileSuccess", function (file) {
    update(file);
    rows[file.uniqueIdentifier].state.textContent = "Uploaded; assembling on the server…";
    follow(file, 0);
  });
  flow.on("fileError", function (file, message) {
    var text = "Failed: " + errorText(message);
    var row = rows[file.uniqueIdentifier];
    row.state.textContent = text;
    row.state.className = "error";
  });
  flow.on("progress", function () {
    var left = flow.timeRemaining();
    document.getElementById("overall").textContent = flow.isUploading()
      ? Math.floor(flow.progress() * 100) + "% · " + human(flow.sizeUploaded()) + " of " + human(flow.getSize()) +
        (isFinite(left) ? " · " + duration(left) + " left" : "")
      : "";
  });

  function addRow(file) {
    var li = document.createElement("li");
    li.innerHTML = '<div class="name"></div><progress max="1" value="0"></progress>' +
      '<div class="meta"><span class="state" role="status"></span> ' +
      '<button type="button" class="secondary pause">Pause</button>' +
      '<button type="button" class="secondary cancel">Cancel</button></div>';
    li.querySelector(".name").textContent = file.relativePath || file.name;
    var row = { li: li, bar: li.querySelector("progress"), state: li.querySelector(".state") };
    var pause = li.querySelector(".pause");
    pause.onclick = function () {
      if (file.paused) { file.resume(); pause.textContent = "Pause"; } else { file.pause(); pause.textContent = "Resume"; }
    };
    li.querySelector(".cancel").onclick = function () { file.cancel(); li.remove(); };
    rows[file.uniqueIdentifier] = row;
    document.getElementById("files").appendChild(li);
    update(file);
  }

  function update(file) {
    var row = rows[file.uniqueIdentifier];
    if (!row) { return; }
    row.bar.value = file.progress();
    if (file.isComplete()) { return; }
    var left = file.timeRemaining();
    row.state.textContent = Math.floor(file.progress() * 100) + "% of " + human(file.size) +
      (file.currentSpeed ? " · " + human(file.currentSpeed) + "/s" : "") +
      (isFinite(left) && left > 0 ? " · " + duration(left) + " left" : "");
  }

  // After flow.js is done the server still assembles the file: ask until it
  // says complete or failed.
  function follow(file, attempt) {
    var q = new URLSearchParams({
      flowIdentifier: file.uniqueIdentifier, flowFilename: file.name, flowTotalSize: file.size,
      flowChunkSize: file.chunkSize, flowTotalChunks: file.chunks.length,
    });
    fetch(api + "/status?" + q.toString(), { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (st) {
        var row = rows[file.uniqueIdentifier];
        if (st.state === "complete") {
          row.state.textContent = "Complete: " + human(st.size) + " at " + st.location;
          row.state.className = "done";
        } else if (st.state === "failed") {
          row.state.textContent = "Failed on the server: " + st.error;
          row.state.className = "error";
        } else if (attempt < 600) {
          setTimeout(function () { follow(file, attempt + 1); }, Math.min(250 * (attempt + 1), 2000));
        }
      })
      .catch(function () {
        if (attempt < 600) { setTimeout(function () { follow(file, attempt + 1); }, 2000); }
      });
  }

  function errorText(message) {
    try { return JSON.parse(message).error || message; } catch (e) { return message || "network error"; }
  }

  function human(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  function duration(s) {
    s = Math.round(s);
    return s >= 3600 ? Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m"
      : s >= 60 ? Math.floor(s / 60) + "m " + (s % 60) + "s" : s + "s";
  }
})();
