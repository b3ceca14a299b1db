// Orderflow canvas: keeps the page live and sends the operator's actions. Plain JS, no
// library: the server renders every region; this swaps the ones marked data-live.
(function () {
  "use strict";
  var REFRESH_MS = 3000;
  var busy = false;
  var stamp = document.getElementById("live-stamp");
  var base = "/canvas";

  function $(selector) { return document.querySelector(selector); }

  function notice(text, bad) {
    var box = $("#notice");
    box.textContent = text;
    box.className = "notice" + (bad ? " bad" : " good");
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  // Keep what the reader has open or scrolled across a swap.
  function keep(el) {
    var open = [];
    el.querySelectorAll("details[open]").forEach(function (d) { open.push(d.id); });
    var scroll = el.classList.contains("scroll") ? [el.scrollLeft, el.scrollTop] : null;
    return { open: open, scroll: scroll };
  }
  function restore(el, kept) {
    kept.open.forEach(function (id) {
      var d = id && document.getElementById(id);
      if (d) { d.open = true; }
    });
    if (kept.scroll) { el.scrollLeft = kept.scroll[0]; el.scrollTop = kept.scroll[1]; }
  }

  function refresh() {
    if (busy || document.hidden) { return Promise.resolve(); }
    busy = true;
    return fetch(location.href, { cache: "no-store", headers: { "X-Canvas": "refresh" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (!fresh || fresh.outerHTML === el.outerHTML) { return; }
          var kept = keep(el);
          el.replaceWith(fresh);
          restore(fresh, kept);
        });
        syncActions();
        stamp.textContent = "live · " + new Date().toLocaleTimeString();
        stamp.classList.remove("stale");
      })
      .catch(function () {
        stamp.textContent = "not reachable · retrying";
        stamp.classList.add("stale");
      })
      .then(function () { busy = false; });
  }

  // The actions a selected step allows (the server says which, in data-actions).
  function syncActions() {
    var form = $("#actions");
    var detail = $("#detail");
    if (!form || !detail) { return; }
    var allowed = (detail.dataset.actions || "").split(" ").filter(Boolean);
    var on = document.body.dataset.actionsOn === "yes";
    form.hidden = !on || !detail.dataset.task || allowed.length === 0;
    form.querySelectorAll("button[data-verb]").forEach(function (b) {
      b.hidden = allowed.indexOf(b.dataset.verb) < 0;
    });
  }

  function credentials() {
    var token = ($("#token") || {}).value || "";
    var actor = ($("#actor") || {}).value || "";
    try {
      sessionStorage.setItem("orderflow-token", token);
      localStorage.setItem("orderflow-actor", actor);
    } catch (e) { /* storage off: type them again */ }
    return { token: token, actor: actor };
  }

  function act(url, fields) {
    var who = credentials();
    var headers = { "Content-Type": "application/x-www-form-urlencoded" };
    if (who.token) { headers.Authorization = "Bearer " + who.token; }
    fields.actor = who.actor;
    return fetch(url, { method: "POST", headers: headers, body: new URLSearchParams(fields) })
      .then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
      })
      .then(function (answer) {
        if (answer.ok) {
          var b = answer.body;
          notice(b.task ? "Task " + b.task + " (" + b.step + "): " + b.state
                        : b.system + ": " + (b.offline ? "offline" : "online"), false);
        } else {
          notice("Refused (" + answer.status + "): " + answer.body.error, true);
        }
        return refresh().then(function () { return answer; });
      })
      .catch(function (e) { notice("Not sent: " + e.message, true); });
  }

  // Centre a step in the graph's frame (scrolling the frame only, not the page).
  function showStep(step) {
    var frame = $("#graph");
    if (!step || !frame) { return; }
    var box = step.getBoundingClientRect();
    var view = frame.getBoundingClientRect();
    frame.scrollLeft += box.left - view.left - (view.width - box.width) / 2;
    frame.scrollTop += box.top - view.top - (view.height - box.height) / 2;
  }

  // Bring the selected step into view; on opening without one, the first step needing
  // attention (the server marks it).
  function showSelected() {
    showStep(document.querySelector("svg.graph .step.selected"));
  }
  function showOpening() {
    showStep(document.querySelector("svg.graph .step.selected") ||
             document.querySelector("svg.graph .step.first-attention"));
  }

  // Zoom to fit: the whole plan scaled into the frame, or back to full size. The state sits
  // on the frame, outside the live region, so the 3-second swaps keep it.
  function toggleFit(button) {
    var frame = $("#frame");
    var on = frame.classList.toggle("fit");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Full size" : "Zoom to fit";
    if (!on) { showOpening(); }
  }

  // A click on a step selects it (its details come with the next refresh, at once).
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-task]");
    if (link) {
      event.preventDefault();
      var url = new URL(location.href);
      url.searchParams.set("task", link.dataset.task);
      history.replaceState(null, "", url);
      refresh().then(showSelected);
      return;
    }
    var fit = event.target.closest("button#fit");
    if (fit) { toggleFit(fit); return; }
    var button = event.target.closest("button.switch");
    if (button) {
      act(base + "/api/systems/" + encodeURIComponent(button.dataset.system) + "/" + button.dataset.to, {});
    }
  });

  var form = $("#actions");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var verb = event.submitter && event.submitter.dataset.verb;
      var task = $("#detail").dataset.task;
      if (!verb || !task) { return; }
      var reason = $("#reason");
      act(base + "/api/tasks/" + task + "/" + verb, { reason: reason.value }).then(function (answer) {
        if (answer && answer.ok) { reason.value = ""; }
      });
    });
  }

  try {
    if ($("#token")) { $("#token").value = sessionStorage.getItem("orderflow-token") || ""; }
    if ($("#actor")) { $("#actor").value = localStorage.getItem("orderflow-actor") || ""; }
  } catch (e) { /* storage off */ }
  var operator = $("#operator");
  if (operator) { operator.addEventListener("submit", function (e) { e.preventDefault(); }); }
  syncActions();
  showOpening();
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
})();
