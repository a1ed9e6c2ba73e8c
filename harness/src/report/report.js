// report.html's filters: by tag, status and backend, on the case table and the
// case sections alike, mirrored in the page's address (#tag=move&status=failed)
// so a link can open the report filtered. Inlined by html.rs.
(function () {
  "use strict";
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var cases = Array.prototype.slice.call(document.querySelectorAll("[data-case]"));
  var rows = cases.filter(function (el) { return el.tagName === "TR"; });

  function fromAddress() {
    var wanted = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var parts = pair.split("=");
      if (parts.length === 2) { wanted[parts[0]] = decodeURIComponent(parts[1]); }
    });
    if (wanted.open === "all") { openAll(); }
    selects.forEach(function (select) {
      var value = wanted[select.dataset.filter];
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
      if (value !== undefined && known) { select.value = value; }
    });
  }

  // #open=all unfolds every case (a screenshot shows every plot and picture).
  function openAll() {
    document.querySelectorAll("section.case details").forEach(function (d) { d.open = true; });
  }

  // Following a case's link in the table unfolds its section.
  function openTarget() {
    var target = /^#case-\d+$/.test(location.hash) && document.getElementById(location.hash.slice(1));
    var details = target && target.querySelector("details");
    if (details) { details.open = true; }
  }

  function keeps(el, filter, value) {
    if (!value) { return true; }
    if (filter === "tag") { return (" " + el.dataset.tags + " ").indexOf(" " + value + " ") >= 0; }
    return el.dataset[filter] === value;
  }

  function apply() {
    var shown = 0;
    cases.forEach(function (el) {
      var kept = selects.every(function (s) { return keeps(el, s.dataset.filter, s.value); });
      el.hidden = !kept;
      if (kept && el.tagName === "TR") { shown += 1; }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " cases shown";
    var address = selects
      .filter(function (s) { return s.value; })
      .map(function (s) { return s.dataset.filter + "=" + encodeURIComponent(s.value); })
      .join("&");
    if (address || /[=]/.test(location.hash)) {
      history.replaceState(null, "", address ? "#" + address : location.pathname);
    }
  }

  selects.forEach(function (select) { select.addEventListener("change", apply); });
  window.addEventListener("hashchange", openTarget);
  fromAddress();
  openTarget();
  apply();
  document.body.setAttribute("data-ready", "yes");
})();
