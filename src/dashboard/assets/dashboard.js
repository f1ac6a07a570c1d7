// shoal dashboard: keeps the page's fragments up to date from the server's event stream.
//
// Every live part of a page is a <section class="fragment" data-src="/fragments/..."
// data-topics="...">. The server sends `change` events naming stale topics (the event id is the
// store revision, so EventSource resumes after a reconnect with Last-Event-ID); this script
// fetches each stale fragment again and swaps its content in. Fetches are coalesced: at most
// one in flight per fragment, and at least MIN_GAP_MS between two fetches of the same one, so a
// large rollout costs a few requests a second whatever the number of commits.
(function () {
  "use strict";

  var MIN_GAP_MS = 500;
  var live = document.getElementById("live");
  var fragments = Array.prototype.slice.call(document.querySelectorAll("section.fragment"));
  var state = fragments.map(function (el) {
    return {
      el: el,
      topics: (el.getAttribute("data-topics") || "").split(/\s+/).filter(Boolean),
      src: el.getAttribute("data-src"),
      dirty: false,
      busy: false,
      last: 0,
      timer: null,
    };
  });
  // How many fragment swaps this page has done: tests read it to tell a live update from a
  // reload (a reload starts again at 0).
  window.shoalSwaps = 0;

  function meters(root) {
    // Bar widths travel as data attributes: the content security policy forbids inline styles.
    var bars = root.querySelectorAll(".meter .bar[data-pct]");
    for (var i = 0; i < bars.length; i++) {
      bars[i].style.width = bars[i].getAttribute("data-pct") + "%";
    }
  }

  function setLive(text, cls) {
    if (!live) return;
    live.textContent = text;
    live.className = "live " + cls;
  }

  function refresh(f) {
    if (f.busy) return;
    var wait = f.last + MIN_GAP_MS - Date.now();
    if (wait > 0) {
      if (!f.timer) {
        f.timer = setTimeout(function () {
          f.timer = null;
          refresh(f);
        }, wait);
      }
      return;
    }
    f.dirty = false;
    f.busy = true;
    f.last = Date.now();
    fetch(f.src, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (res.status === 401) {
          // The session ended: the reload lands on the login form.
          window.location.reload();
          return null;
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        f.el.innerHTML = html;
        meters(f.el);
        window.shoalSwaps += 1;
      })
      .catch(function () {
        // Try again with the next change (or now, if one came meanwhile).
        f.dirty = true;
      })
      .then(function () {
        f.busy = false;
        if (f.dirty) refresh(f);
      });
  }

  function stale(topics) {
    state.forEach(function (f) {
      var hit = topics.indexOf("*") >= 0 || f.topics.some(function (t) {
        return topics.indexOf(t) >= 0;
      });
      if (hit) {
        f.dirty = true;
        refresh(f);
      }
    });
  }

  meters(document);
  if (!window.EventSource || state.length === 0) {
    setLive("static", "off");
    return;
  }
  var after = document.body.getAttribute("data-revision") || "";
  var source = new EventSource("/live" + (after ? "?after=" + encodeURIComponent(after) : ""));
  source.onopen = function () {
    setLive("live", "on");
  };
  source.onerror = function () {
    // EventSource reconnects by itself, resuming from the last event id.
    setLive("reconnecting", "off");
  };
  function onEvent(e) {
    setLive("live", "on");
    try {
      var data = JSON.parse(e.data);
      if (data.revision) document.body.setAttribute("data-revision", data.revision);
      stale(data.topics || ["*"]);
    } catch (err) {
      stale(["*"]);
    }
  }
  source.addEventListener("change", onEvent);
  source.addEventListener("reset", onEvent);
})();
