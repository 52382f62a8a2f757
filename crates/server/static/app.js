// Aliquot bench UI: keyboard and scanner behaviour. No inline scripts (the pages' CSP
// forbids them); htmx does the requests.
(function () {
  "use strict";

  function scanField(form) {
    return form.querySelector('input[name="accession"]');
  }

  // After a scan form's request: clear the scanned value (keep the run's settings marked
  // data-keep), put focus where the next key belongs.
  document.addEventListener("htmx:afterRequest", function (ev) {
    var form = ev.detail.elt;
    // A board's own polling is not the user's activity: it does not postpone the logoff.
    if (form && form.hasAttribute && form.hasAttribute("data-passive")) return;
    resetIdle();
    if (!form || !form.matches || !form.matches("form[data-scan]")) return;
    form.querySelectorAll("input:not([type=hidden]):not([data-keep])").forEach(function (i) { i.value = ""; });
    // A receipt's attestations hold for one tube: back to their defaults for the next.
    form.querySelectorAll("fieldset.attest select").forEach(function (s) {
      for (var k = 0; k < s.options.length; k++) s.options[k].selected = s.options[k].defaultSelected;
    });
    if (form.getAttribute("hx-target") === "#scans") return; // focus: see htmx:load below
    var first = form.querySelector("[data-first]");
    var target = first ? document.getElementById(first.getAttribute("data-first")) : scanField(form);
    if (target) target.focus();
  });

  // A new row of a station's list: a problem row takes focus on its suggested reject button
  // (Enter rejects with it, 1-9 picks another); any other row gives it back to the scan field.
  document.addEventListener("htmx:load", function (ev) {
    var row = ev.detail.elt;
    if (!row || !row.matches || !row.matches("li.scanrow")) return;
    if (row.getAttribute("data-outcome") === "problem") {
      var b = row.querySelector("form.reject button");
      if (b) { b.focus(); return; }
    }
    var scan = document.getElementById("scan");
    if (scan && row.parentElement && row.parentElement.id === "scans") scan.focus();
  });

  document.addEventListener("keydown", function (ev) {
    var form = ev.target && ev.target.closest ? ev.target.closest("form.reject") : null;
    if (form) {
      if (/^[1-9]$/.test(ev.key)) {
        var b = form.querySelector('button[data-key="' + ev.key + '"]');
        if (b) { ev.preventDefault(); b.click(); }
        return;
      }
      if (ev.key === "Escape") {
        var scan = document.getElementById("scan");
        if (scan) { ev.preventDefault(); scan.focus(); }
      }
      return;
    }
    // Scanning a position moves on to the tube field (a wedge ends with Enter).
    if (ev.key === "Enter" && ev.target && ev.target.hasAttribute && ev.target.hasAttribute("data-next")) {
      var next = document.getElementById(ev.target.getAttribute("data-next"));
      if (next && ev.target.value.trim() !== "") { ev.preventDefault(); next.focus(); }
    }
  });

  // The test picker: show only tests whose code, name or LOINC contain the typed text.
  document.addEventListener("input", function (ev) {
    if (!ev.target || ev.target.id !== "test-filter") return;
    var q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll("#test-list tr[data-search]").forEach(function (tr) {
      tr.classList.toggle("hidden", q !== "" && tr.getAttribute("data-search").indexOf(q) < 0);
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.target && ev.target.id === "test-filter" && ev.key === "Enter") {
      // Enter ticks the first visible match instead of submitting the order.
      ev.preventDefault();
      var first = document.querySelector("#test-list tr[data-search]:not(.hidden) input[type=checkbox]");
      if (first) { first.checked = true; ev.target.select(); }
    }
  });

  document.addEventListener("click", function (ev) {
    if (ev.target && ev.target.closest && ev.target.closest("[data-print]")) window.print();
  });

  // Automatic logoff: after the session's idle timeout without activity, leave the page (the
  // server refuses the session by then anyway), so no patient data stays on the screen.
  var idleTimer = null;
  function resetIdle() {
    var secs = parseInt(document.body && document.body.getAttribute("data-idle-seconds"), 10);
    if (!secs) return;
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(function () { window.location.assign("/login?m=token_idle"); }, secs * 1000);
  }
  document.addEventListener("DOMContentLoaded", resetIdle);
})();
