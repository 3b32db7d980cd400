/* Client-side column sorting for leaderboard tables: click a metric header; first click puts the best first. */
(function () {
  "use strict";
  function key(td) {
    if (!td) { return null; }
    var v = td.getAttribute("data-v");
    if (v === null || v === "") { return null; }
    var x = parseFloat(v);
    return isNaN(x) ? v : x;
  }
  function sortBy(table, th) {
    var idx = parseInt(th.getAttribute("data-col"), 10);
    var hib = th.getAttribute("data-hib") === "1";
    var asc;
    if (th.classList.contains("sorted-asc")) { asc = false; }
    else if (th.classList.contains("sorted-desc")) { asc = true; }
    else { asc = !hib; }  // best first on the first click
    var ths = table.querySelectorAll("th.sortable");
    for (var i = 0; i < ths.length; i++) { ths[i].classList.remove("sorted-asc", "sorted-desc"); }
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var ka = key(a.cells[idx]), kb = key(b.cells[idx]);
      if (ka === null && kb === null) { return 0; }
      if (ka === null) { return 1; }   // missing values always last
      if (kb === null) { return -1; }
      var c = (typeof ka === "number" && typeof kb === "number") ? ka - kb : String(ka).localeCompare(String(kb));
      return asc ? c : -c;
    });
    for (var j = 0; j < rows.length; j++) { body.appendChild(rows[j]); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var ths = document.querySelectorAll("table.lb th.sortable");
    for (var i = 0; i < ths.length; i++) {
      ths[i].addEventListener("click", function (ev) {
        var th = ev.currentTarget;
        sortBy(th.closest("table"), th);
      });
    }
  });
})();
