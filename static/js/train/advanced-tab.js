// Advanced: the same config as JSON, for keys the tabs do not show. Valid
// edits here update the tabs; tab edits show here.
import { h, field } from "../ui.js";

/** Parses a JSON textarea, marking it invalid with a message in words. */
function parseJson(textarea, errorEl, kind) {
  try {
    const v = JSON.parse(textarea.value || "null");
    const ok = kind === "object" ? v && typeof v === "object" && !Array.isArray(v) : Array.isArray(v);
    if (!ok) throw new Error(kind === "object" ? "must be a JSON object ({...})" : "must be a JSON list ([...])");
    textarea.removeAttribute("aria-invalid");
    errorEl.textContent = "";
    return v;
  } catch (e) {
    textarea.setAttribute("aria-invalid", "true");
    errorEl.textContent = `Not valid: ${e.message}`;
    return undefined;
  }
}

/** A labelled JSON textarea with its error line: [element, textarea, error]. */
function jsonField(label, rows, hint) {
  const text = h("textarea", { spellcheck: "false", rows });
  const error = h("p", { class: "field-error", "aria-live": "polite" });
  const [wrap] = field(label, text, hint);
  return [h("div", {}, wrap, error), text, error];
}

export function advancedTab(state) {
  const [configField, configText, configError] = jsonField(
    "Training config (JSON)",
    16,
    'SimpleTuner\'s arguments, e.g. "--max_train_steps": 1000.',
  );
  const [loaderField, loaderText, loaderError] = jsonField(
    "Dataloader config (JSON list)",
    10,
    "instance_data_dir: dataset://<name> for an uploaded dataset, /datasets/<folder> for a server folder, or an https URL.",
  );
  const onEdit = () => {
    const config = parseJson(configText, configError, "object");
    const loader = parseJson(loaderText, loaderError, "list");
    state.markInvalid("advanced-config", config === undefined && "The training config JSON is not valid.");
    state.markInvalid("advanced-loader", loader === undefined && "The dataloader JSON is not valid.");
    if (config !== undefined && loader !== undefined) state.replace({ config, dataloader_config: loader }, configText);
  };
  configText.addEventListener("input", onEdit);
  loaderText.addEventListener("input", onEdit);
  const show = () => {
    configText.value = JSON.stringify(state.config, null, 2);
    loaderText.value = JSON.stringify(state.dataloader, null, 2);
    for (const [text, error] of [
      [configText, configError],
      [loaderText, loaderError],
    ]) {
      text.removeAttribute("aria-invalid");
      error.textContent = "";
    }
  };
  state.onChange((source) => {
    if (source !== configText && source !== "validity") show();
  });
  show();
  return h("div", { class: "grid2" }, configField, loaderField);
}
