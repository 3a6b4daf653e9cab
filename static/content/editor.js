// Template editor: put the cursor on the line and column a field's error names, and mark the
// field, so a Liquid/MJML/JSON error is found without counting lines.
document.addEventListener("DOMContentLoaded", () => {
  let first = null;
  document.querySelectorAll(".errorlist li").forEach((item) => {
    const found = /line (\d+), column (\d+)/i.exec(item.textContent);
    const row = item.closest(".form-row, .fieldBox, div");
    const field = row && row.querySelector("textarea, input[type=text]");
    if (!found || !field) return;
    const lines = field.value.split("\n");
    const line = Math.min(Number(found[1]), lines.length);
    let offset = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
    offset += Math.max(0, Math.min(Number(found[2]) - 1, lines[line - 1].length));
    field.classList.add("sb-error-field");
    field.dataset.errorLine = String(line);
    if (!first) first = { field, offset };
  });
  if (first) {
    first.field.focus();
    first.field.setSelectionRange(first.offset, first.offset + 1);
  }
});
