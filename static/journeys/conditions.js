// Journey conditions editor: rows of (field path, operator, value) for each condition a journey
// definition holds (trigger, exit events, wait steps, branch paths). The JSON textarea stays the
// stored form: the rows are read from it and every edit is written straight back, so the two
// always agree. Validation stays on the server (apps/journeys/conditions.py); its errors, keyed by
// path, are shown on the row they name.
(() => {
  const VALUELESS = ["exists", "not_exists"];
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const isLeaf = (c) => isObject(c) && !("all" in c) && !("any" in c) && !("not" in c);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => (k === "text" ? (node.textContent = v) : node.setAttribute(k, v)));
    children.forEach((child) => child && node.append(child));
    return node;
  }

  // Where conditions live in a definition: [{label, path, holder}], the condition in holder.conditions.
  function slots(definition) {
    const found = [];
    if (isObject(definition.trigger)) {
      found.push({ label: "Trigger conditions", path: "trigger.conditions", holder: definition.trigger });
    }
    (Array.isArray(definition.exit_events) ? definition.exit_events : []).forEach((exit, i) => {
      if (isObject(exit)) {
        found.push({ label: `Exit event ${i + 1} (${exit.event || "?"}) conditions`,
                     path: `exit_events[${i}].conditions`, holder: exit });
      }
    });
    (Array.isArray(definition.steps) ? definition.steps : []).forEach((step) => {
      if (!isObject(step) || typeof step.id !== "string") return;
      if (step.type === "wait") {
        found.push({ label: `Step ${step.id}: wait for ${step.event || "?"} matching`,
                     path: `steps.${step.id}.conditions`, holder: step });
      } else if (step.type === "branch" && Array.isArray(step.paths)) {
        step.paths.forEach((branch, j) => {
          if (isObject(branch)) {
            found.push({ label: `Step ${step.id}: path ${j + 1} (to ${branch.next || "end"}) when`,
                         path: `steps.${step.id}.paths[${j}].conditions`, holder: branch });
          }
        });
      }
    });
    return found;
  }

  // A condition as {mode, rows, single}, or null when it nests deeper than the form edits.
  function toRows(cond) {
    if (cond === undefined || cond === null || (isObject(cond) && !Object.keys(cond).length)) {
      return { mode: "all", rows: [], single: false };
    }
    if (isLeaf(cond)) return { mode: "all", rows: [cond], single: true };
    for (const mode of ["all", "any"]) {
      if (isObject(cond) && Object.keys(cond).length === 1 && Array.isArray(cond[mode])
          && cond[mode].every(isLeaf)) {
        return { mode, rows: cond[mode], single: false };
      }
    }
    return null;
  }

  // Typed text as JSON when it is JSON (42, true, "42", {"ref": "trigger.x"}), else as a string;
  // for "is one of", a JSON list or comma-separated values.
  function parseScalar(text) {
    try { return JSON.parse(text); } catch { return text; }
  }
  function parseValue(text, op) {
    const trimmed = text.trim();
    if (op === "in") {
      const parsed = parseScalar(trimmed);
      if (Array.isArray(parsed)) return parsed;
      return trimmed === "" ? [] : trimmed.split(",").map((item) => parseScalar(item.trim()));
    }
    return parseScalar(trimmed);
  }
  function formatScalar(value) {
    if (typeof value === "string" && parseScalar(value) === value && value.trim() === value) return value;
    return JSON.stringify(value);
  }
  function formatValue(value, op) {
    if (value === undefined) return "";
    if (op === "in" && Array.isArray(value)
        && value.every((v) => ["string", "number", "boolean"].includes(typeof v)
          && formatScalar(v) !== "" && !formatScalar(v).includes(","))) {
      return value.map(formatScalar).join(", ");
    }
    return formatScalar(value);
  }

  function rowToCondition(row) {
    const op = row.querySelector(".sb-op").value;
    const cond = { field: row.querySelector(".sb-field").value.trim(), op };
    if (!VALUELESS.includes(op)) cond.value = parseValue(row.querySelector(".sb-value").value, op);
    return cond;
  }

  function fieldsetToCondition(fieldset) {
    const rows = [...fieldset.querySelectorAll(".sb-condition-row")].map(rowToCondition);
    const mode = fieldset.querySelector(".sb-mode").value;
    if (!rows.length) return undefined;
    return rows.length === 1 && mode === "all" ? rows[0] : { [mode]: rows };
  }

  function errorList(messages, id) {
    if (!messages.length) return null;
    const list = el("ul", id ? { class: "errorlist", id } : { class: "errorlist" });
    messages.forEach((m) => list.append(el("li", { text: m })));
    return list;
  }

  // Server errors under `path`: {slot: [..], rows: {index: [[subpath, message]]}}.
  function errorsFor(path, model, errors) {
    const result = { slot: [], rows: {} };
    Object.entries(errors).forEach(([key, messages]) => {
      if (key !== path && !key.startsWith(`${path}.`)) return;
      const rest = key.slice(path.length);
      const grouped = /^\.(all|any)\[(\d+)\](.*)$/.exec(rest);
      let index = null;
      let sub = rest;
      if (grouped && model && !model.single) [index, sub] = [Number(grouped[2]), grouped[3]];
      else if (model && model.single && rest.startsWith(".")) index = 0;
      messages.forEach((m) => {
        if (index === null) result.slot.push(`${key}: ${m}`);
        else (result.rows[index] ||= []).push([sub.replace(/^\./, ""), `${key}: ${m}`]);
      });
    });
    return result;
  }

  function operatorSelect(operators, current) {
    const select = el("select", { class: "sb-op" });
    Object.entries(operators).forEach(([code, label]) => select.append(el("option", { value: code, text: label })));
    if (current && !(current in operators)) {
      select.append(el("option", { value: current, text: `${current} (unknown)` }));
    }
    select.value = current || "eq";
    return select;
  }

  function renderRow(slot, cond, index, operators, rowErrors) {
    const errorId = `sb-cond-${slot.path.replace(/[^A-Za-z0-9_-]/g, "-")}-${index}-errors`;
    const field = el("input", { type: "text", class: "sb-field vTextField", list: "sb-condition-paths",
                                placeholder: "trigger.properties.plan" });
    field.value = typeof cond.field === "string" ? cond.field : "";
    const op = operatorSelect(operators, typeof cond.op === "string" ? cond.op : "eq");
    const value = el("input", { type: "text", class: "sb-value vTextField" });
    value.value = formatValue(cond.value, cond.op);
    const valueLabel = el("label", { class: "sb-value-label" }, "Value ", value);
    const syncValue = () => { valueLabel.hidden = VALUELESS.includes(op.value); };
    op.addEventListener("change", syncValue);
    syncValue();
    const remove = el("button", { type: "button", class: "sb-remove", text: "Remove",
                                  "aria-label": `Remove condition ${index + 1} of ${slot.label}` });
    const row = el("li", { class: "sb-condition-row" },
                   el("label", {}, "Field path ", field), el("label", {}, "Operator ", op), valueLabel, remove,
                   errorList(rowErrors.map(([, m]) => m), errorId));
    const inputs = { field, op, value };
    rowErrors.forEach(([sub]) => {
      const target = inputs[sub] || null;
      (target ? [target] : [field, op, value]).forEach((input) => input.setAttribute("aria-invalid", "true"));
    });
    if (rowErrors.length) [field, op, value].forEach((input) => input.setAttribute("aria-describedby", errorId));
    return row;
  }

  function renderSlot(slot, operators, errors, onEdit) {
    const cond = slot.holder.conditions;
    const model = toRows(cond);
    const found = errorsFor(slot.path, model, errors);
    const fieldset = el("fieldset", { class: "module sb-conditions", "data-path": slot.path },
                        el("legend", { text: slot.label }), errorList(found.slot, null));
    if (model === null) {
      fieldset.append(el("p", { class: "help", text:
        "These conditions nest deeper than the form edits (\"not\", or groups inside groups): edit them in the JSON." }));
      return fieldset;
    }
    const mode = el("select", { class: "sb-mode" },
                    el("option", { value: "all", text: "all of these conditions" }),
                    el("option", { value: "any", text: "any of these conditions" }));
    mode.value = model.mode;
    const list = el("ol", { class: "sb-condition-rows" });
    model.rows.forEach((row, i) => list.append(renderRow(slot, row, i, operators, found.rows[i] || [])));
    const add = el("button", { type: "button", class: "sb-add", text: "Add condition",
                               "aria-label": `Add a condition to ${slot.label}` });
    fieldset.append(el("label", {}, "Match ", mode), list, add,
                    el("p", { class: "help", text: model.rows.length ? "" : "No conditions: always matches." }));
    const changed = () => onEdit(slot, fieldsetToCondition(fieldset));
    fieldset.addEventListener("input", changed);
    fieldset.addEventListener("change", changed);
    add.addEventListener("click", () => {
      list.append(renderRow(slot, { field: "", op: "eq", value: "" }, list.children.length, operators, []));
      changed();
      list.lastElementChild.querySelector(".sb-field").focus();
    });
    list.addEventListener("click", (event) => {
      if (!event.target.classList.contains("sb-remove")) return;
      event.target.closest(".sb-condition-row").remove();
      // Screen readers name rows by number: keep the numbers those left show.
      list.querySelectorAll(".sb-remove").forEach((button, i) => {
        button.setAttribute("aria-label", `Remove condition ${i + 1} of ${slot.label}`);
      });
      changed();
    });
    return fieldset;
  }

  function datalist(whole) {
    const list = el("datalist", { id: "sb-condition-paths" });
    (whole ? ["recipient.attributes.", "recipient.email", "recipient.locale", "recipient.created_at", "history."]
      : ["trigger.properties.", "event.properties.", "recipient.attributes.", "recipient.email", "history.",
         "events.", "messages.", "webhooks.", "batch.count"]).forEach((p) => list.append(el("option", { value: p })));
    return list;
  }

  document.addEventListener("DOMContentLoaded", () => {
    // A journey's definition holds conditions in several places; a segment's field is one condition.
    const textarea = document.getElementById("id_definition") || document.getElementById("id_conditions");
    const whole = textarea && textarea.id === "id_conditions";
    const operatorsScript = document.getElementById("sb-condition-operators");
    if (!textarea || !operatorsScript) return;
    const operators = JSON.parse(operatorsScript.textContent);
    const errors = JSON.parse(document.getElementById("sb-condition-errors").textContent);
    const editor = el("div", { class: "form-row sb-conditions-editor", id: "sb-conditions-editor" });
    textarea.closest(".form-row").before(editor);
    let definition = null;

    function onEdit(slot, cond) {
      if (cond === undefined) delete slot.holder.conditions;
      else slot.holder.conditions = cond;
      textarea.value = JSON.stringify(whole ? (definition.conditions || {}) : definition, null, 2);
    }

    function render() {
      editor.replaceChildren(el("h3", { text: "Conditions" }), datalist(whole));
      try {
        definition = JSON.parse(textarea.value.trim() || "{}");
      } catch {
        definition = null;
      }
      if (whole && isObject(definition)) definition = { conditions: definition };
      if (!isObject(definition)) {
        editor.append(el("p", { class: "help", text: "Fix the JSON below to edit its conditions here." }));
        return;
      }
      editor.append(el("p", { class: "help", text:
        "Values are read as JSON when they are JSON (42, true, \"42\", {\"ref\": \"trigger.properties.x\"}), "
        + "else as text; for “is one of”, separate values with commas. Saved as the JSON below." }));
      const found = whole ? [{ label: "Members: the recipients matching", path: "conditions", holder: definition }]
        : slots(definition);
      if (!found.length) editor.append(el("p", { class: "help", text: "No trigger, wait or branch step yet." }));
      found.forEach((slot) => editor.append(renderSlot(slot, operators, errors, onEdit)));
    }

    textarea.addEventListener("change", render);
    render();
  });
})();
