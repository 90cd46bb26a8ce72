// Train in Cloud: build a config in the Model / Training / Dataloader /
// Publishing tabs (or as JSON under Advanced), bring datasets, choose
// hardware, see the estimate and the upload, save the config, submit (once).
import { get, post, put, paths } from "../api.js";
import { h, field, alertBox, clearAlerts, money, bytes, tabs } from "../ui.js";
import { createState } from "../train/form-state.js";
import { modelTab } from "../train/model-tab.js";
import { trainingTab } from "../train/training-tab.js";
import { dataloaderTab } from "../train/dataloader-tab.js";
import { publishingTab } from "../train/publishing-tab.js";
import { advancedTab } from "../train/advanced-tab.js";

/** What the form starts from: the catalog's first well-known family. */
function startingConfig(catalog) {
  const f = catalog.families.find((x) => x.family === "flux") || catalog.families[0];
  return Object.fromEntries(Object.entries(f.defaults).filter(([, v]) => v !== null));
}

function uploadText(u) {
  const n = u.datasets.length;
  return `Will zip and upload ${n} dataset${n > 1 ? "s" : ""}: ${u.datasets.map((d) => `${d.id} (${d.file_count} files, ${bytes(d.bytes)})`).join(", ")}; ${u.files} files, ${bytes(u.bytes)} before compression${u.skipped ? `, ${u.skipped} hidden/secret files left out` : ""}.`;
}

export async function trainView() {
  const [{ providers }, { configs }, publishing, catalog] = await Promise.all([
    get(paths.providers),
    get(paths.configs),
    get(paths.publishingStatus),
    get(paths.models),
  ]);
  const replicate = providers[0];
  const state = createState();
  state.replace({ config: startingConfig(catalog), dataloader_config: [] }, "start");
  // One idempotency key per form: a double click or a retry submits once.
  let idempotencyKey = crypto.randomUUID();
  const newKey = () => {
    idempotencyKey = crypto.randomUUID();
  };

  const [savedField, saved] = field(
    "Configuration",
    h(
      "select",
      {},
      h("option", { value: "" }, "New (from the tabs)"),
      configs.map((c) => h("option", { value: c.name }, c.name)),
    ),
    "A saved config fills the tabs.",
  );
  const [runField, runName] = field(
    "Run name",
    h("input", { type: "text", maxlength: 200, placeholder: "my-flux-lora" }),
    "Shown in the job list and sent to your tracker.",
  );
  const [hwField, hardware] = field(
    "Hardware",
    h(
      "select",
      {},
      replicate.hardware_profiles.map((p) =>
        h(
          "option",
          { value: p.id, selected: p.id === replicate.hardware_profile },
          `${p.label} — $${p.cost_per_hour.toFixed(2)}/h`,
        ),
      ),
    ),
  );
  const [deadlineField, deadline] = field(
    "Deadline (minutes)",
    h("input", { type: "number", min: 1, max: 10080, step: 1, inputmode: "numeric", placeholder: "none" }),
    "Replicate stops the job (and its billing) this long after submit, even if this server is down; the spending limit counts the job at this worst case. Empty: no deadline (Replicate's own limit still applies).",
  );
  const delivery = { value: "auto", changed: () => changed() };

  const tabset = tabs(
    [
      { id: "model", label: "Model", panel: modelTab(state, catalog) },
      { id: "training", label: "Training", panel: trainingTab(state) },
      { id: "dataloader", label: "Dataloader", panel: dataloaderTab(state) },
      { id: "publishing", label: "Publishing", panel: publishingTab(state, publishing, delivery) },
      { id: "advanced", label: "Advanced (JSON)", panel: advancedTab(state) },
    ],
    "Training configuration",
  );

  const saveName = h("input", { type: "text", maxlength: 64, placeholder: "flux-cats" });
  const [saveField] = field(
    "Save as",
    saveName,
    "Saves the tabs as a named config you can load again (or submit by name from CI).",
  );
  const saveButton = h("button", { type: "button", class: "secondary" }, "Save config");
  saveButton.addEventListener("click", async () => {
    clearAlerts();
    const name = saveName.value.trim();
    if (!name) {
      alertBox("Name the config before saving it.");
      return;
    }
    try {
      await put(paths.config(name), { config: state.config, dataloader_config: state.dataloader });
      if (![...saved.options].some((o) => o.value === name)) saved.append(h("option", { value: name }, name));
      alertBox(`Saved as ${name}.`, "info");
    } catch (e) {
      alertBox(`Could not save: ${e.message}`);
    }
  });

  const estimate = h("p", { "aria-live": "polite" }, "Estimating…");
  const upload = h("p", { class: "muted" });
  const problems = h("ul", { class: "field-error", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Submit job");
  const result = h("div", { "aria-live": "polite" });

  let estimateTimer;
  let estimateSeq = 0; // answers can arrive out of order: only the newest request may write
  function changed() {
    newKey();
    const wrong = state.problems();
    problems.replaceChildren(...wrong.map((p) => h("li", {}, p)));
    submit.disabled = wrong.length > 0;
    clearTimeout(estimateTimer);
    if (wrong.length) {
      estimate.textContent = "Fix the fields marked in red to see an estimate.";
      return;
    }
    estimate.textContent = "Estimating…";
    estimateTimer = setTimeout(async () => {
      const seq = ++estimateSeq;
      try {
        const e = await post(paths.costEstimate, {
          config: state.config,
          dataloader_config: state.dataloader,
          hardware_profile: hardware.value,
          ...deadlineValue(),
        });
        if (seq !== estimateSeq) return;
        if (e.upload_error) upload.textContent = `Cannot upload: ${e.upload_error}`;
        else if (e.upload && e.upload.files) upload.textContent = uploadText(e.upload);
        else upload.textContent = "No datasets to upload from here.";
        estimate.textContent = `About ${money(e.estimated_cost_usd)} (${money(e.low_usd)}–${money(e.high_usd)}): ${e.max_train_steps ?? "?"} steps × ${e.seconds_per_step?.toFixed(1)} s/step at $${e.hardware_cost_per_hour?.toFixed(2)}/h (${e.basis === "history" ? "from your past jobs" : "typical speed"}).${e.worst_case_usd != null ? ` At most ${money(e.worst_case_usd)} with the ${e.max_runtime_minutes}-minute deadline.` : ""}`;
      } catch (err) {
        if (seq !== estimateSeq) return;
        estimate.textContent = `No estimate: ${err.message}`;
      }
    }, 300);
  }
  state.onChange(changed);
  hardware.addEventListener("change", changed);
  deadline.addEventListener("input", () => {
    deadline.setCustomValidity(
      deadlineValue() === null ? "A whole number of minutes from 1 to 10080 (7 days), or empty." : "",
    );
    deadline.reportValidity();
    changed();
  });
  // `{max_runtime_minutes}` for a request, `{}` when empty, null when invalid.
  function deadlineValue() {
    const raw = deadline.value.trim();
    if (!raw) return {};
    const n = Number(raw);
    return Number.isInteger(n) && n >= 1 && n <= 10080 ? { max_runtime_minutes: n } : null;
  }
  runName.addEventListener("input", newKey);
  // The saved config as loaded (secrets show as "***"): a submit sends its name
  // plus only the keys changed here; "***" sent back keeps the stored secret.
  let loaded = null;
  saved.addEventListener("change", async () => {
    loaded = null;
    if (!saved.value) return;
    try {
      const { config } = await get(paths.config(saved.value));
      loaded = config;
      saveName.value = saved.value;
      state.replace({ config: config.config, dataloader_config: config.dataloader_config ?? [] }, saved);
    } catch (e) {
      alertBox(`Could not load that config: ${e.message}`);
    }
  });

  const form = h(
    "form",
    {
      class: "panel",
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearAlerts();
        if (state.problems().length) {
          alertBox(`Fix these before submitting: ${state.problems().join("; ")}`);
          return;
        }
        if (deadlineValue() === null) {
          alertBox("The deadline must be a whole number of minutes from 1 to 10080 (7 days), or empty.");
          return;
        }
        submit.disabled = true;
        submit.textContent = "Submitting…";
        try {
          const config = state.config;
          const dataloader_config = state.dataloader;
          const body = {
            config,
            dataloader_config,
            hardware_profile: hardware.value,
            delivery: delivery.value,
            idempotency_key: idempotencyKey,
            ...deadlineValue(),
          };
          if (saved.value && loaded) {
            body.config_name_to_load = saved.value;
            body.config = Object.fromEntries(
              Object.entries(config).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(loaded.config[k])),
            );
            if (JSON.stringify(dataloader_config) === JSON.stringify(loaded.dataloader_config ?? [])) {
              delete body.dataloader_config;
            }
          }
          if (runName.value.trim()) body.tracker_run_name = runName.value.trim();
          const r = await post(paths.submit, body);
          newKey();
          if (r.approval_required) {
            // Held by an approval rule: nothing was sent to Replicate yet.
            result.replaceChildren(heldNotice(r));
            return;
          }
          result.replaceChildren(
            h(
              "div",
              { class: "alert ok" },
              h(
                "span",
                {},
                r.idempotent_hit ? "This job was already submitted: " : "Job submitted: ",
                h("a", { href: `#/job/${encodeURIComponent(r.job_id)}` }, "open it"),
                r.upload ? ` · uploaded ${r.upload.files} files (${bytes(r.upload.archive_bytes)} zipped)` : "",
                r.estimated_cost_usd != null ? ` · estimate ${money(r.estimated_cost_usd)}` : "",
              ),
            ),
          );
          if (r.cost_limit_warning) alertBox(r.cost_limit_warning, "warn");
        } catch (e) {
          const extra =
            e.code === "cost_limit_exceeded"
              ? " An admin can raise or switch off the limit in Settings → Spending limit."
              : "";
          alertBox(`The job was not submitted: ${e.message}${extra}`);
          // A refused submit may be retried with changes: a fresh key.
          newKey();
        } finally {
          submit.disabled = state.problems().length > 0;
          submit.textContent = "Submit job";
        }
      },
    },
    h("h1", {}, "Train in Cloud"),
    h("div", { class: "grid2" }, h("div", {}, savedField, runField), h("div", {}, hwField, deadlineField)),
    tabset,
    h("div", { class: "grid2" }, h("div", { class: "row" }, saveField, saveButton), h("div", {})),
    h(
      "div",
      { class: "grid2" },
      h("div", {}, h("h3", {}, "Estimated cost"), estimate),
      h("div", {}, h("h3", {}, "Upload"), upload),
    ),
    problems,
    h("div", { class: "row end" }, submit),
    result,
  );
  changed();
  return { el: form };
}

/** What a submit an approval rule holds shows: why, the request id, and its state. */
function heldNotice(r) {
  return h(
    "div",
    { class: "alert warn", role: "status", "data-approval-request": String(r.approval_request_id) },
    h(
      "span",
      {},
      `Waiting for approval: request ${r.approval_request_id}. ${r.reason}. `,
      "A lead or an admin decides; nothing has been sent to Replicate yet. ",
      h("a", { href: "#/approvals/mine" }, "See your requests"),
      r.estimated_cost_usd != null ? ` · estimate ${money(r.estimated_cost_usd)}` : "",
    ),
  );
}
