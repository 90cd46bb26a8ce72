// One training config as the Train in Cloud tabs edit it: the `config` and
// `dataloader_config` the API takes. Every tab and the Advanced JSON editors
// read and write this one state, so an edit anywhere shows everywhere.
import { h, field } from "../ui.js";

/** SimpleTuner reads `--name` and `name` alike; the tabs write `--name`. */
export const arg = (name) => `--${name.replace(/^--/, "")}`;

export function createState() {
  let config = {};
  let dataloader = [];
  const listeners = new Set();
  const invalid = new Map(); // field id -> message
  const emit = (source) => listeners.forEach((f) => f(source));
  const setMany = (values, source) => {
    for (const [name, value] of Object.entries(values)) {
      const bare = name.replace(/^--/, "");
      delete config[bare];
      const empty = value === undefined || value === null || value === "" || Number.isNaN(value);
      if (empty) delete config[arg(bare)];
      else config[arg(bare)] = value;
    }
    emit(source);
  };
  return {
    get config() {
      return config;
    },
    get dataloader() {
      return dataloader;
    },
    /** The value of a SimpleTuner argument, whichever spelling the config uses. */
    get(name) {
      return config[arg(name)] ?? config[name.replace(/^--/, "")];
    },
    /** Sets one argument; undefined, null, "" or NaN removes it. */
    set: (name, value, source) => setMany({ [name]: value }, source),
    setMany,
    setDataloader(list, source) {
      dataloader = list;
      emit(source);
    },
    replace(next, source) {
      config = { ...(next.config || {}) };
      dataloader = Array.isArray(next.dataloader_config) ? next.dataloader_config.map((d) => ({ ...d })) : [];
      emit(source);
    },
    onChange(f) {
      listeners.add(f);
    },
    /** Fields report problems here; submit stays off while any remain. */
    markInvalid(id, message) {
      if (message) invalid.set(id, message);
      else invalid.delete(id);
      emit("validity");
    },
    problems: () => [...invalid.values()],
  };
}

/**
 * A labelled input bound to one argument: typing writes the state (when the
 * value is valid, with the error shown inline otherwise); state changes made
 * elsewhere (a loaded config, the JSON editor) show here.
 */
export function bound(state, name, label, control, { hint, parse = (v) => v, check, format = (v) => v ?? "" } = {}) {
  const [wrap] = field(label, control, hint);
  const error = h("p", { class: "field-error", "aria-live": "polite", id: `${control.id}-error` });
  wrap.append(error);
  const show = () => {
    const value = state.get(name);
    const text = value === undefined ? "" : String(format(value));
    if (control.type === "checkbox") control.checked = value === true || value === "true";
    else if (control.value !== text) control.value = text;
  };
  const commit = () => {
    const raw = control.type === "checkbox" ? control.checked : control.value.trim();
    const message = raw === "" ? null : check ? check(raw) : null;
    error.textContent = message || "";
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
    state.markInvalid(control.id, message && `${label}: ${message}`);
    if (!message) state.set(name, raw === "" ? undefined : parse(raw), control);
  };
  control.addEventListener(control.tagName === "SELECT" || control.type === "checkbox" ? "change" : "input", commit);
  state.onChange((source) => {
    if (source !== control && source !== "validity") show();
  });
  show();
  return wrap;
}

/** Number checks in words: whole numbers in a range, or positive decimals. */
export const whole = (min, max) => (raw) => {
  const n = Number(raw);
  if (!Number.isInteger(n)) return "a whole number";
  if (n < min || (max !== undefined && n > max)) return max === undefined ? `at least ${min}` : `from ${min} to ${max}`;
  return null;
};
export const positive = (max) => (raw) => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) return "a number above 0 (e.g. 0.0001 or 1e-4)";
  if (max !== undefined && n > max) return `at most ${max}`;
  return null;
};

export function select(options, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map(([value, label]) => h("option", { value }, label)),
  );
}
