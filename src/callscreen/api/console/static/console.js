// callscreen console: progressive enhancement only; every page works without it.
"use strict";
(function () {
  function $(sel, root) { return (root || document).querySelector(sel); }

  // select every row of the page
  var pageBox = $("#select-page");
  if (pageBox) {
    pageBox.addEventListener("change", function () {
      document.querySelectorAll('input[name="entry"]').forEach(function (box) {
        box.checked = pageBox.checked;
      });
    });
  }

  // confirmations: a permanent approval says it cannot be undone, with the count
  var form = $("#entries-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (!button) { return; }
      var all = $("#all-matching");
      var count = all && all.checked ? Number(form.dataset.total)
        : form.querySelectorAll('input[name="entry"]:checked').length;
      if (button.value === "approve-permanent") {
        var ok = window.confirm("Approve " + count + " entr" + (count === 1 ? "y" : "ies") +
          " permanently? This cannot be undone: permanent entries can never be unapproved, " +
          "removed or deleted.");
        if (!ok) { event.preventDefault(); return; }
        $("#confirm-permanent").checked = true;
      }
      if (button.value === "remove") {
        var reason = $("#remove-reason");
        if (!reason.value.trim()) {
          event.preventDefault();
          reason.setCustomValidity("Give a reason to remove entries");
          reason.reportValidity();
          reason.addEventListener("input", function () { reason.setCustomValidity(""); }, { once: true });
        }
      }
    });
  }

  // the attempt log, live: server-sent events, rows built as text (never as HTML)
  var live = $("#live");
  if (live && window.EventSource) {
    var body = $("#attempts tbody");
    var source = new EventSource(live.dataset.stream);
    var cell = function (row, text) {
      var td = document.createElement("td");
      td.textContent = text == null ? "" : String(text);
      row.appendChild(td);
      return td;
    };
    source.addEventListener("attempt", function (event) {
      var r = JSON.parse(event.data);
      var row = document.createElement("tr");
      row.className = "new";
      cell(row, String(r.time || "").replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, ""));
      var numberCell = cell(row, "");
      if (r.number) {
        var a = document.createElement("a");
        a.href = "/numbers/" + encodeURIComponent(r.number);
        a.textContent = r.number;
        numberCell.appendChild(a);
      } else { numberCell.textContent = r.dialed || ""; }
      cell(row, r.direction);
      var result = cell(row, "");
      var span = document.createElement("span");
      span.className = "result " + String(r.result || "").replace(/[^A-Z_]/g, "");
      span.textContent = r.outcome || r.result;
      result.appendChild(span);
      cell(row, r.list); cell(row, r.match); cell(row, r.reason);
      cell(row, r.campaign); cell(row, r.callerid_name);
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > 500) { body.deleteRow(-1); }
    });
    source.onerror = function () { live.textContent = "Live: reconnecting…"; };
    source.onopen = function () { live.textContent = "Live: new calls appear at the top."; };
    window.addEventListener("pagehide", function () { source.close(); });
  }
})();

// an import's progress: polled until it ends, then the page is reloaded with its summary
(function () {
  "use strict";
  var box = document.getElementById("task");
  var live = function (state) { return state === "queued" || state === "running"; };
  if (!box || !live(box.dataset.state)) { return; }
  var poll = function () {
    fetch(box.dataset.poll, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (t) {
        document.getElementById("progress").value = t.percent;
        document.getElementById("progress").textContent = t.percent + " %";
        document.getElementById("percent").textContent = String(t.percent);
        document.getElementById("state").textContent = t.state;
        document.getElementById("rows").textContent = String(t.rows);
        if (live(t.state)) { window.setTimeout(poll, 300); } else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(poll, 1000); });
  };
  window.setTimeout(poll, 200);
})();
