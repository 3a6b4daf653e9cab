// Segment change page: while a recompute runs, poll its progress (the admin's progress/ view) and
// show it; reload once it is done, for the new size and sample.
(() => {
  document.addEventListener("DOMContentLoaded", () => {
    const status = document.getElementById("sb-segment-status");
    if (!status || status.textContent.trim() !== "computing") return;
    const bar = document.getElementById("sb-segment-progress");
    const counts = document.getElementById("sb-segment-counts");
    const poll = async () => {
      try {
        const response = await fetch(status.dataset.url, { credentials: "same-origin" });
        const data = await response.json();
        status.textContent = data.status;
        bar.max = data.total || 1;
        bar.value = data.done;
        counts.textContent = `${data.done} of ${data.total} recipients`;
        if (data.status !== "computing") {
          window.location.reload();
          return;
        }
      } catch {
        // A failed poll is retried on the next tick.
      }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  });
})();
