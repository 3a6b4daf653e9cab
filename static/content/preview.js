// Preview: show the email at desktop or mobile width.
document.addEventListener("DOMContentLoaded", () => {
  const frame = document.getElementById("email-frame");
  document.querySelectorAll(".sb-width").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll(".sb-width").forEach((b) => b.classList.remove("sb-active"));
      button.classList.add("sb-active");
      if (frame) frame.width = button.dataset.width;
    });
  });
});
