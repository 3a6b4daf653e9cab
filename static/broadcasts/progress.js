// The broadcast admin's progress bar: polls the small JSON endpoint every 2 s until the
// broadcast is completed or cancelled and nothing of it is still queued.
(function () {
  "use strict";
  function poll(box) {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (counts) {
        if (!counts) return;
        box.querySelector("progress").value = counts.percent;
        box.querySelector(".sb-percent").textContent = counts.percent + " %";
        box.querySelector(".sb-counts").textContent = counts.text;
        var finished = (counts.status === "completed" || counts.status === "cancelled") && !counts.queued;
        if (!finished) setTimeout(function () { poll(box); }, 2000);
      })
      .catch(function () { setTimeout(function () { poll(box); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".sb-broadcast-progress").forEach(function (box) {
      setTimeout(function () { poll(box); }, 1000);
    });
  });
})();
