// gdbench report: sort and filter the case tables, hover and hide the plots' series.
// The page reads without it; "#selftest" at the end of the address checks the page.
"use strict";
(function () {
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message)));
  const data = JSON.parse(document.getElementById("gdbench-data").textContent);

  function cellValue(row, index, type) {
    const raw = row.cells[index].dataset.value;
    if (type === "number") {
      const v = parseFloat(raw);
      return Number.isNaN(v) ? Infinity : v;  // a case without a time sorts last
    }
    return raw || "";
  }

  function sortTable(table, index) {
    const th = table.tHead.rows[0].cells[index];
    const type = th.dataset.type;
    const ascending = !th.classList.contains("sorted-asc");
    for (const other of table.tHead.rows[0].cells) other.classList.remove("sorted-asc", "sorted-desc");
    th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, index, type), y = cellValue(b, index, type);
      const order = type === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    for (const row of rows) body.appendChild(row);
  }

  function filters(table, box) {
    const selects = {};
    for (const key of ["kernel", "device", "dtype"]) {
      const values = [...new Set(Array.from(table.tBodies[0].rows, (r) => r.dataset[key]))].sort();
      const select = document.createElement("select");
      select.innerHTML = '<option value="">all</option>' +
        values.map((v) => `<option>${v}</option>`).join("");
      select.addEventListener("change", apply);
      const label = document.createElement("label");
      label.append(key + " ", select);
      box.append(label);
      selects[key] = select;
    }
    function apply() {
      for (const row of table.tBodies[0].rows) {
        row.hidden = Object.entries(selects).some(([k, s]) => s.value && row.dataset[k] !== s.value);
      }
    }
  }

  for (const table of document.querySelectorAll("table.cases")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, i) =>
      th.addEventListener("click", () => sortTable(table, i)));
    const box = document.querySelector(`.filters[data-table="${table.id}"]`);
    if (box) filters(table, box);
  }

  // Plots: each series is the SVG group with id "series-K"; its markers are <use> elements.
  const tooltip = document.createElement("div");
  tooltip.id = "tooltip";
  document.body.append(tooltip);
  // A marker of a plot is a <use> element in its line's group: text(j) is what the j-th says.
  function hover(group, text) {
    if (!group) return;
    group.querySelectorAll("use").forEach((marker, j) => {
      const said = text(j);
      if (!said) return;
      marker.style.cursor = "crosshair";
      marker.addEventListener("mouseenter", (e) => {
        tooltip.textContent = said;
        tooltip.style.display = "block";
        tooltip.style.left = e.clientX + 12 + "px";
        tooltip.style.top = e.clientY + 12 + "px";
      });
      marker.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
    });
  }
  for (const figure of document.querySelectorAll("figure.plot.interactive")) {
    data.series.forEach((s, k) => hover(figure.querySelector(`g[id="series-${k}"]`), (j) => {
      const p = s.points[j];
      return p && `${s.name}, N = ${p.n}: ${p.latency} ${p.interval}` +
        (p.throughput ? `, throughput ${p.throughput}` : "") + `, ${p.gbs}`;
    }));
  }
  // The other plots' lines and scatters: their points' values from the page's data.
  for (const [gid, line] of Object.entries(data.hover || {})) {
    hover(document.querySelector(`figure.plot g[id="${gid}"]`), (j) => {
      const p = line.points[j];
      return p && (line.label ? line.label + ": " : "") + `${line.x} ${p[0]}, ${line.y} ${p[1]}`;
    });
  }
  const toggles = document.querySelector(".toggles");
  if (toggles) {
    data.series.forEach((s, k) => {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.addEventListener("change", () => {
        for (const g of document.querySelectorAll(`figure.plot.interactive g[id="series-${k}"]`)) {
          g.style.display = box.checked ? "" : "none";
        }
      });
      const label = document.createElement("label");
      label.append(box, " " + s.name);
      toggles.append(label);
    });
  }

  if (location.hash === "#selftest") {
    const report = { errors, tables: [], plots: [], sorted: null, toggled: null };
    for (const table of document.querySelectorAll("table.cases")) {
      report.tables.push(table.tBodies[0].rows.length);
    }
    for (const figure of document.querySelectorAll("figure.plot")) {
      const svg = figure.querySelector("svg");
      const hoverable = Object.keys(data.hover || {})
        .filter((gid) => figure.querySelector(`g[id="${gid}"] use`)).length;
      report.plots.push({ name: figure.dataset.plot, drawn: !!svg && svg.getBBox().width > 0,
                          series: figure.querySelectorAll('g[id^="series-"]').length,
                          hoverable });
    }
    const table = document.querySelector("table.cases");
    if (table) {
      const th = table.tHead.rows[0].cells[4];  // latency
      th.dispatchEvent(new MouseEvent("click"));
      const values = Array.from(table.tBodies[0].rows, (r) => cellValue(r, 4, "number"))
        .filter((v) => v !== Infinity);
      report.sorted = values.every((v, i) => i === 0 || values[i - 1] <= v);
      th.dispatchEvent(new MouseEvent("click"));
      const down = Array.from(table.tBodies[0].rows, (r) => cellValue(r, 4, "number"))
        .filter((v) => v !== Infinity);
      report.sorted = report.sorted && down.every((v, i) => i === 0 || down[i - 1] >= v);
    }
    const first = document.querySelector(".toggles input");
    if (first) {
      first.click();
      const hidden = document.querySelector('figure.plot.interactive g[id="series-0"]');
      report.toggled = !!hidden && hidden.style.display === "none";
      first.click();
    }
    const out = document.getElementById("selftest");
    out.textContent = JSON.stringify(report);
    out.hidden = false;
  }
})();
