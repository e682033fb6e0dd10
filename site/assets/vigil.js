/* Sortable and filterable tables for the Vigil report site. No dependencies, no network. */
(function () {
  "use strict";
  function cellValue(row, i) {
    var cell = row.cells[i];
    if (!cell) return "";
    var s = cell.getAttribute("data-sort");
    if (s !== null && s !== "") { var f = parseFloat(s); if (!isNaN(f)) return f; }
    if (s === "") return null;
    var t = cell.textContent.trim();
    var n = parseFloat(t.replace(/,/g, ""));
    return (/^-?[\d,.]+/.test(t) && !isNaN(n) && !/^\d{4}-\d\d-\d\d/.test(t)) ? n : t.toLowerCase();
  }
  function sortBy(table, th, i) {
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i);
      if (x === null || x === "—") return 1;          // empty cells last either way
      if (y === null || y === "—") return -1;
      if (typeof x === "number" && typeof y === "number") return asc ? x - y : y - x;
      return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function setup() {
    document.querySelectorAll("table.vigil-sortable").forEach(function (table) {
      if (table.dataset.vigilReady) return;
      table.dataset.vigilReady = "1";
      var head = table.tHead && table.tHead.rows[0];
      if (!head) return;
      Array.prototype.forEach.call(head.cells, function (th, i) {
        th.setAttribute("title", "Sort");
        th.addEventListener("click", function () { sortBy(table, th, i); });
      });
    });
    document.querySelectorAll("input.vigil-filter").forEach(function (input) {
      if (input.dataset.vigilReady) return;
      input.dataset.vigilReady = "1";
      var p = input.closest("p");
      var table = p && p.nextElementSibling;
      while (table && table.tagName !== "TABLE") table = table.nextElementSibling;
      if (!table) return;
      input.addEventListener("input", function () {
        var q = input.value.trim().toLowerCase();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          r.style.display = !q || r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
        });
      });
    });
  }
  if (typeof document$ !== "undefined") { document$.subscribe(setup); }   // Material instant loading
  else if (document.readyState !== "loading") { setup(); }
  else { document.addEventListener("DOMContentLoaded", setup); }
})();
