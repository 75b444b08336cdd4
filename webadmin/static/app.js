// hotdesk admin: sortable/filterable tables, confirmations, and polling of progress pages.
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    return (cell.getAttribute("data-sort") || cell.textContent).trim().toLowerCase();
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, index) {
      if (th.hasAttribute("data-nosort")) return;
      th.classList.add("sortable-th");
      th.setAttribute("role", "button");
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > 1; });
        var asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        rows.sort(function (a, b) {
          var x = cellValue(a, index), y = cellValue(b, index);
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny) && String(nx) === x && String(ny) === y) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  document.querySelectorAll("input.table-filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) return;
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
      });
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      var name = box.getAttribute("data-select-all");
      document.querySelectorAll("input[name='" + name + "']").forEach(function (b) {
        if (!b.closest("tr").hidden) b.checked = box.checked;
      });
    });
  });

  var BADGE = { sent: "text-bg-success", queued: "text-bg-warning", failed: "text-bg-danger", superseded: "text-bg-secondary" };

  function poll(el, render, done) {
    var url = el.getAttribute("data-poll"), tries = 0;
    function tick() {
      tries += 1;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          render(data);
          if (done(data)) return;
          if (tries < 600) window.setTimeout(tick, 1000);
        })
        .catch(function () { if (tries < 600) window.setTimeout(tick, 3000); });
    }
    tick();
  }

  var notify = document.getElementById("notify-progress");
  if (notify) {
    poll(notify, function (data) {
      var finished = 0;
      data.rows.forEach(function (row) {
        var tr = notify.querySelector("tr[data-notify-id='" + row.id + "']");
        if (!tr) return;
        var badge = tr.querySelector("[data-result]");
        badge.textContent = row.result;
        badge.className = "badge " + (BADGE[row.result] || "text-bg-light");
        tr.querySelector("[data-col='detail']").textContent = row.detail;
        if (row.status !== "pending") finished += 1;
      });
      notify.querySelector("[data-done-count]").textContent = finished;
      var pct = data.rows.length ? Math.round(100 * finished / data.rows.length) : 100;
      notify.querySelector("[data-progress]").style.width = pct + "%";
      notify.querySelector("[data-poll-state]").textContent = data.done ? "all done" :
        "updating… (queued NOTIFYs go out when the switch connection is up)";
    }, function (data) { return data.done; });
  }

  var PUSH_STATE = { running: "text-bg-primary", done: "text-bg-success", cancelled: "text-bg-secondary" };
  var pushes = document.getElementById("push-campaigns");
  if (pushes) {
    poll(pushes, function (data) {
      var list = data.campaigns || [data];
      list.forEach(function (c) {
        var tr = pushes.querySelector("tr[data-campaign-id='" + c.id + "']");
        if (!tr) return;
        tr.setAttribute("data-state", c.state);
        var state = tr.querySelector("[data-col='state']");
        state.textContent = c.state;
        state.className = "badge " + (PUSH_STATE[c.state] || "text-bg-light");
        tr.querySelector("[data-progress]").style.width = c.percent + "%";
        tr.querySelector(".progress").setAttribute("aria-valuenow", c.percent);
        tr.querySelector("[data-col='done']").textContent = c.done + " of " + c.total;
        tr.querySelector("[data-col='counts']").textContent = "sent " + c.sent + " · confirmed " +
          c.confirmed + " · failed " + c.failed + " · queued " + c.queued + " · waiting " + c.waiting;
        if (c.state !== "running") {
          var form = tr.querySelector("form");
          if (form) form.remove();
        }
      });
      var note = document.querySelector("[data-poll-state]");
      if (note && !data.campaigns) {
        note.textContent = data.state === "running" ? "about " + data.seconds_left + " s left; updating…" : data.state;
      }
    }, function (data) {
      return !(data.campaigns || [data]).some(function (c) { return c.state === "running"; });
    });
  }

  var job = document.getElementById("import-job");
  if (job) {
    poll(job, function (data) {
      job.querySelector("[data-job-state]").textContent = data.state;
      job.querySelector("[data-job-done]").textContent = data.done;
      job.querySelector("[data-progress]").style.width = (data.total ? Math.round(100 * data.done / data.total) : 100) + "%";
    }, function (data) {
      if (data.state !== "running" && job.querySelector("[data-job-summary] p.text-body-secondary")) {
        window.location.reload();
      }
      return data.state !== "running";
    });
  }
})();
