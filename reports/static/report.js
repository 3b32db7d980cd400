/* matbench report: no dependencies, works from file://. Everything here is an enhancement: without it the
   pages still show every number and image.
   - Leaderboards: click a metric header to sort (first click: best first); all tables of one leaderboard (the
     whole one and its per-mask-set parts) keep the same row order. A leaderboard wider than the page is shown
     as one table per mask set; "Columns" hides metrics.
   - Comparison pages: click an image (or Enter on it) for the full-size viewer; flipping keeps zoom and scroll,
     so the same region of every model's output and of the ground truth is compared at full resolution. */
(function () {
  "use strict";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  // ------------------------------------------------------------------ leaderboards
  function key(td) {
    if (!td) { return null; }
    var v = td.getAttribute("data-v");
    if (v === null || v === "") { return null; }
    var x = parseFloat(v);
    return isNaN(x) ? v : x;
  }
  function sortBy(th) {
    var group = th.closest(".lb-group") || th.closest("table").parentElement;
    var k = th.getAttribute("data-key");
    var hib = th.getAttribute("data-hib") === "1";
    var asc;
    if (th.classList.contains("sorted-asc")) { asc = false; }
    else if (th.classList.contains("sorted-desc")) { asc = true; }
    else { asc = !hib; }  // best first on the first click
    // Row order from the whole table (it holds every column), applied to every table of the leaderboard.
    var whole = group.querySelector("table.lb-all") || th.closest("table");
    var ref = whole.querySelector('th.sortable[data-key="' + k + '"]') || th;
    var idx = ref.cellIndex;
    var rows = Array.prototype.slice.call(whole.tBodies[0].rows);
    rows.sort(function (a, b) {
      var ka = key(a.cells[idx]), kb = key(b.cells[idx]);
      if (ka === null && kb === null) { return 0; }
      if (ka === null) { return 1; }   // missing values always last
      if (kb === null) { return -1; }
      var c = (typeof ka === "number" && typeof kb === "number") ? ka - kb : String(ka).localeCompare(String(kb));
      return asc ? c : -c;
    });
    var order = rows.map(function (r) { return r.getAttribute("data-row"); });
    each(group.querySelectorAll("table.lb"), function (table) {
      var body = table.tBodies[0];
      var byKey = {};
      each(body.rows, function (r) { byKey[r.getAttribute("data-row")] = r; });
      order.forEach(function (o) { if (byKey[o]) { body.appendChild(byKey[o]); } });
      each(table.querySelectorAll("th.sortable"), function (h) {
        h.classList.remove("sorted-asc", "sorted-desc");
        if (h.getAttribute("data-key") === k) { h.classList.add(asc ? "sorted-asc" : "sorted-desc"); }
      });
    });
  }
  function applyColumns(group) {
    var hidden = {};
    each(group.querySelectorAll(".cols input[data-m]"), function (cb) { hidden[cb.getAttribute("data-m")] = !cb.checked; });
    each(group.querySelectorAll("table.lb"), function (table) {
      each(table.querySelectorAll("[data-m]"), function (el) {
        el.style.display = hidden[el.getAttribute("data-m")] ? "none" : "";
      });
      // Mask-set header cells span only their visible columns.
      each(table.querySelectorAll("tr.group th[data-g]"), function (gth) {
        var g = gth.getAttribute("data-g"), n = 0;
        each(table.querySelectorAll('th.sortable[data-g="' + g + '"]'), function (h) { if (h.style.display !== "none") { n++; } });
        gth.colSpan = Math.max(n, 1);
        gth.style.display = n ? "" : "none";
      });
    });
  }
  function fit(group) {
    // The first layout whose tables all fit the page: the whole table, one per mask set, chunks of a mask set.
    var levels = group.querySelectorAll(".lb-level");
    var note = group.querySelector(".lb-wrapnote");
    var chosen = levels.length - 1;
    for (var i = 0; i < levels.length; i++) {
      each(levels, function (l, j) { l.hidden = j !== i; });
      var fits = true;
      each(levels[i].querySelectorAll(".scroll"), function (w) {
        var t = w.querySelector("table");
        if (t && t.scrollWidth > w.clientWidth + 1) { fits = false; }
      });
      if (fits) { chosen = i; break; }
    }
    each(levels, function (l, j) { l.hidden = j !== chosen; });
    if (note) { note.hidden = chosen === 0; }
  }
  function initLeaderboards() {
    each(document.querySelectorAll("table.lb th.sortable"), function (th) {
      th.addEventListener("click", function (ev) { sortBy(ev.currentTarget); });
    });
    var groups = document.querySelectorAll(".lb-group");
    each(groups, function (g) {
      each(g.querySelectorAll(".cols input[data-m]"), function (cb) {
        cb.addEventListener("change", function () { applyColumns(g); fit(g); });
      });
      fit(g);
    });
    var timer = null;
    window.addEventListener("resize", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { each(groups, fit); }, 100);
    });
  }

  // ------------------------------------------------------------------ hole overlay switch
  var STORE = "matbench.holeOverlay";
  function setOverlay(mode, remember) {
    each(document.querySelectorAll("img[data-overlay-" + mode + "]"), function (img) {
      img.src = img.getAttribute("data-overlay-" + mode);
    });
    each(document.querySelectorAll(".overlay-switch [data-overlay]"), function (b) {
      b.classList.toggle("on", b.getAttribute("data-overlay") === mode);
    });
    document.body.setAttribute("data-overlay", mode);
    if (remember) { try { window.localStorage.setItem(STORE, mode); } catch (e) { /* file:// may refuse */ } }
  }
  function initOverlay() {
    var sw = document.querySelector(".overlay-switch");
    if (!sw) { return; }
    var mode = sw.getAttribute("data-default");
    try { mode = window.localStorage.getItem(STORE) || mode; } catch (e) { /* keep the default */ }
    setOverlay(mode, false);
    each(sw.querySelectorAll("[data-overlay]"), function (b) {
      b.addEventListener("click", function () { setOverlay(b.getAttribute("data-overlay"), true); });
    });
  }

  // ------------------------------------------------------------------ full-size viewer
  var V = null;  // {el, img, body, item, imgs, i, zoom}
  function itemImages(item) { return Array.prototype.slice.call(item.querySelectorAll("img.full")); }
  function mainIndex(imgs) {  // positions of the cells' main images (not the sample thumbnails)
    var out = [];
    imgs.forEach(function (im, j) { if (!im.closest(".samples")) { out.push(j); } });
    return out;
  }
  function defaultZoom(nat) {
    var w = V.body.clientWidth - 8, h = V.body.clientHeight - 8, z = 1;
    while ((z + 1) * nat.w <= w && (z + 1) * nat.h <= h && z < 16) { z++; }
    return z;  // the largest integer zoom that fits, never below 1:1 (full resolution, scroll if larger)
  }
  function applyZoom() {
    var w = V.img.naturalWidth, h = V.img.naturalHeight;
    if (!w) { return; }
    if (!V.zoom) { V.zoom = defaultZoom({w: w, h: h}); }
    V.img.style.width = (w * V.zoom) + "px";
    V.img.style.height = (h * V.zoom) + "px";
    V.el.querySelector(".vzoom").textContent = V.zoom + "× (" + w + "×" + h + " px)";
  }
  // Side by side: every main cell in its own pane at the same zoom; scrolling one pane scrolls them all.
  function sideZoom() { return V.zoom || 1; }
  function renderSide() {
    var side = V.el.querySelector(".vside");
    side.textContent = "";
    var mains = mainIndex(V.imgs);
    side.style.setProperty("--cols", String(mains.length));
    var syncing = false;
    mains.forEach(function (j, k) {
      var pane = document.createElement("div");
      pane.className = "vpane";
      var label = document.createElement("div");
      label.className = "vlabel";
      label.textContent = (k + 1) + " " + (V.imgs[j].getAttribute("data-label") || "");
      var sc = document.createElement("div");
      sc.className = "vscroll";
      var im = document.createElement("img");
      im.alt = label.textContent;
      im.onload = function () {
        im.style.width = (im.naturalWidth * sideZoom()) + "px";
        im.style.height = (im.naturalHeight * sideZoom()) + "px";
      };
      im.src = V.imgs[j].getAttribute("src");
      sc.appendChild(im);
      sc.addEventListener("scroll", function () {
        if (syncing) { return; }
        syncing = true;
        each(side.querySelectorAll(".vscroll"), function (o) {
          if (o !== sc) { o.scrollLeft = sc.scrollLeft; o.scrollTop = sc.scrollTop; }
        });
        syncing = false;
      });
      pane.appendChild(label);
      pane.appendChild(sc);
      side.appendChild(pane);
    });
    V.el.querySelector(".vzoom").textContent = sideZoom() + "× side by side";
  }
  function setSide(on) {
    V.side = on;
    V.el.querySelector(".vside").hidden = !on;
    V.body.hidden = on;
    V.el.querySelector(".vstrip").hidden = on;
    if (on) { renderSide(); } else { V.el.querySelector(".vside").textContent = ""; show(V.i); }
  }
  function zoomSide() {
    each(V.el.querySelectorAll(".vside img"), function (im) {
      if (!im.naturalWidth) { return; }
      im.style.width = (im.naturalWidth * sideZoom()) + "px";
      im.style.height = (im.naturalHeight * sideZoom()) + "px";
    });
    V.el.querySelector(".vzoom").textContent = sideZoom() + "× side by side";
  }
  function show(i) {
    var n = V.imgs.length;
    V.i = ((i % n) + n) % n;
    var src = V.imgs[V.i].getAttribute("src");
    var sx = V.body.scrollLeft, sy = V.body.scrollTop;
    V.img.onload = function () { applyZoom(); V.body.scrollLeft = sx; V.body.scrollTop = sy; };
    if (V.img.getAttribute("src") !== src) { V.img.src = src; } else { applyZoom(); }
    V.img.setAttribute("data-index", String(V.i));
    V.el.querySelector(".vtitle").textContent = V.item.getAttribute("data-id") + " — " +
      (V.imgs[V.i].getAttribute("data-label") || "") + "  (" + (V.i + 1) + "/" + n + ")";
    each(V.el.querySelectorAll(".vstrip button"), function (b) {
      b.classList.toggle("on", parseInt(b.getAttribute("data-i"), 10) === V.i);
    });
  }
  function buildStrip() {
    var strip = V.el.querySelector(".vstrip");
    strip.textContent = "";
    var mains = mainIndex(V.imgs);
    V.imgs.forEach(function (im, j) {
      var b = document.createElement("button");
      b.type = "button";
      var k = mains.indexOf(j);
      b.textContent = (k >= 0 && k < 9 ? (k + 1) + " " : "") + (im.getAttribute("data-label") || "");
      b.setAttribute("data-i", String(j));
      b.addEventListener("click", function () { show(j); });
      strip.appendChild(b);
    });
    V.imgs.forEach(function (im) { var p = new Image(); p.src = im.getAttribute("src"); });  // flip without waiting
  }
  function openViewer(img) {
    var el = document.getElementById("viewer");
    if (!el) { return; }
    var item = img.closest(".item");
    if (!V) {
      var vimg = document.createElement("img");  // made here: the page holds no <img> without a src
      vimg.className = "vimg";
      vimg.alt = "";
      el.querySelector(".vbody").appendChild(vimg);
      V = {el: el, img: vimg, body: el.querySelector(".vbody"), zoom: 0};
    }
    V.item = item;
    V.imgs = itemImages(item);
    el.hidden = false;
    document.body.classList.add("viewing");
    buildStrip();
    show(V.imgs.indexOf(img));
    V.body.focus();
  }
  function closeViewer() {
    if (!V || V.el.hidden) { return; }
    if (V.side) { setSide(false); }
    V.el.hidden = true;
    document.body.classList.remove("viewing");
    var back = V.imgs[V.i];
    if (back) { back.focus({preventScroll: false}); }
  }
  function moveItem(step) {
    var items = Array.prototype.slice.call(document.querySelectorAll(".item"));
    var j = items.indexOf(V.item) + step;
    if (j < 0 || j >= items.length) { return; }
    var keep = mainIndex(V.imgs).indexOf(V.i);
    V.item = items[j];
    V.item.scrollIntoView({block: "nearest"});
    V.imgs = itemImages(V.item);
    buildStrip();
    var mains = mainIndex(V.imgs);
    show(keep >= 0 && keep < mains.length ? mains[keep] : 0);
  }
  function onKey(ev) {
    if (!V || V.el.hidden) {
      var t = ev.target;
      if ((ev.key === "Enter" || ev.key === " ") && t && t.matches && t.matches("img.full")) {
        ev.preventDefault();
        openViewer(t);
      }
      return;
    }
    var k = ev.key;
    if (V.side) {
      if (k === "Escape" || k === "s") { setSide(false); if (k === "Escape") { closeViewer(); } }
      else if (k === "ArrowDown") { moveItem(1); renderSide(); }
      else if (k === "ArrowUp") { moveItem(-1); renderSide(); }
      else if (k === "+" || k === "=") { V.zoom = Math.min(16, sideZoom() + 1); zoomSide(); }
      else if (k === "-" || k === "_") { V.zoom = Math.max(1, sideZoom() - 1); zoomSide(); }
      else if (k === "h") {
        setOverlay(document.body.getAttribute("data-overlay") === "opaque" ? "tint" : "opaque", true);
        renderSide();
      }
      else { return; }
      ev.preventDefault();
      return;
    }
    if (k === "Escape") { closeViewer(); }
    else if (k === "s") { setSide(true); }
    else if (k === "ArrowRight") { show(V.i + 1); }
    else if (k === "ArrowLeft") { show(V.i - 1); }
    else if (k === "ArrowDown") { moveItem(1); }
    else if (k === "ArrowUp") { moveItem(-1); }
    else if (k === "+" || k === "=") { V.zoom = Math.min(16, (V.zoom || 1) + 1); applyZoom(); }
    else if (k === "-" || k === "_") { V.zoom = Math.max(1, (V.zoom || 1) - 1); applyZoom(); }
    else if (k === "0") { V.zoom = 0; applyZoom(); }
    else if (k === "h") {
      setOverlay(document.body.getAttribute("data-overlay") === "opaque" ? "tint" : "opaque", true);
      show(V.i);
    }
    else if (/^[1-9]$/.test(k)) {
      var mains = mainIndex(V.imgs), m = parseInt(k, 10) - 1;
      if (m < mains.length) { show(mains[m]); }
    }
    else { return; }
    ev.preventDefault();
  }
  function initViewer() {
    var el = document.getElementById("viewer");
    if (!el) { return; }
    each(document.querySelectorAll(".item img.full"), function (img) {
      img.addEventListener("click", function () { openViewer(img); });
    });
    el.querySelector(".vclose").addEventListener("click", closeViewer);
    el.querySelector(".vbody").tabIndex = -1;
    el.querySelector(".vbody").addEventListener("click", function (ev) {
      if (ev.target === ev.currentTarget) { closeViewer(); }
    });
    document.addEventListener("keydown", onKey);
  }

  document.addEventListener("DOMContentLoaded", function () {
    initLeaderboards();
    initOverlay();
    initViewer();
  });
})();
