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

export function advancedTab(state) {
  const configText = h("textarea", { spellcheck: "false", rows: 16 });
  const configError = h("p", { class: "field-error", "aria-live": "polite" });
  const [configField] = field(
    "Training config (JSON)",
    configText,
    'SimpleTuner\'s arguments, e.g. "--max_train_steps": 1000.',
  );
  const loaderText = h("textarea", { spellcheck: "false", rows: 10 });
  const loaderError = h("p", { class: "field-error", "aria-live": "polite" });
  const [loaderField] = field(
    "Dataloader config (JSON list)",
    loaderText,
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
    configText.removeAttribute("aria-invalid");
    loaderText.removeAttribute("aria-invalid");
    configError.textContent = "";
    loaderError.textContent = "";
  };
  state.onChange((source) => {
    if (source !== configText && source !== "validity") show();
  });
  show();
  return h("div", { class: "grid2" }, h("div", {}, configField, configError), h("div", {}, loaderField, loaderError));
}
