// Progressive enhancement for the task list; the page works without it.
// - filters apply as soon as they change (the search box on Enter or when it loses focus)
// - the list region refreshes itself every few seconds (only when changed, and never while
//   someone is ticking boxes or typing in it)
// - the buttons (complete, complete selected, reassign, snooze) act without a page load
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var POLL_MS = 4000;

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var filters = document.getElementById("filters");
    if (filters) {
      filters.addEventListener("change", function () { filters.submit(); });
    }
    var region = document.getElementById("tasklist");
    if (!region) return;
    var status = document.getElementById("status");
    var liveUrl = region.getAttribute("data-live-url");
    var last = region.innerHTML;
    var busy = false;

    function announce(text) { if (status) status.textContent = text; }

    function inUse() {
      if (region.querySelector(".pick:checked, details[open]")) return true;
      var active = document.activeElement;
      return !!(active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
    }

    function refresh(force) {
      if (busy || (!force && inUse())) return Promise.resolve();
      busy = true;
      return fetch(liveUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            var focused = document.activeElement;
            var focusTask = focused && focused.closest ? focused.closest("[data-task-id]") : null;
            var focusId = focusTask ? focusTask.getAttribute("data-task-id") : null;
            region.innerHTML = html;
            last = region.innerHTML;
            if (focusId) {
              var again = region.querySelector('[data-task-id="' + focusId + '"] button, [data-task-id="' + focusId + '"] a');
              if (again) again.focus();
            }
          }
        })
        .catch(function () { /* offline for a moment: try again on the next tick */ })
        .then(function () { busy = false; });
    }

    region.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.classList || !form.classList.contains("act-form")) return;
      event.preventDefault();
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      var item = form.closest("[data-task-id]");
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json" },
        body: new FormData(form)
      }).then(function (response) {
        return response.json().then(function (body) {
          announce(body.detail || (response.ok ? "Done." : "That did not work."));
          if (response.status === 401) window.location.reload();
        });
      }).catch(function () {
        announce("Could not reach the server; try again.");
      }).then(function () {
        if (button) button.disabled = false;
        return refresh(true);
      }).then(function () {
        // Keep keyboard users in the list: focus the next task's checkmark.
        var next = region.querySelector(".task.open .check");
        if (item && next) next.focus();
      });
    });

    window.setInterval(function () {
      if (document.visibilityState === "visible") refresh(false);
    }, POLL_MS);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") refresh(false);
    });
  });
})();
