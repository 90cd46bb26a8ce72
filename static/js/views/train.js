// Train in Cloud: pick a saved config or edit JSON, choose hardware, see the
// estimate and the data that will be uploaded, then submit (once).
import { get, post, paths } from "../api.js";
import { h, field, alertBox, clearAlerts, money, bytes } from "../ui.js";

const EXAMPLE_CONFIG = {
  model_type: "lora",
  model_family: "flux",
  pretrained_model_name_or_path: "black-forest-labs/FLUX.1-dev",
  "--max_train_steps": 1000,
  "--learning_rate": 1e-4,
  "--lora_rank": 16,
};
const EXAMPLE_DATALOADER = [];

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

function datasetSummary(dataloader) {
  const local = (dataloader || []).filter(
    (d) => typeof d.instance_data_dir === "string" && d.instance_data_dir.startsWith("/datasets"),
  );
  if (!local.length) return "No local datasets: nothing will be uploaded.";
  return `Counting ${local.length} local dataset${local.length > 1 ? "s" : ""}…`;
}

export async function trainView() {
  const [{ providers }, { configs }, publishing] = await Promise.all([
    get(paths.providers),
    get(paths.configs),
    get(paths.publishingStatus),
  ]);
  const replicate = providers[0];
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
      h("option", { value: "" }, "Edit below (inline)"),
      configs.map((c) => h("option", { value: c.name }, c.name)),
    ),
    "A saved config fills the editors; edits override it key by key.",
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
  const [deliveryField, delivery] = field(
    "Get the model back via",
    h(
      "select",
      {},
      h("option", { value: "auto" }, `Automatic (now: ${publishing.default_path || "not ready"})`),
      h("option", { value: "local", disabled: !publishing.local.available }, "Download to this machine"),
      h("option", { value: "hub" }, "Hugging Face Hub (config needs push_to_hub, hub_model_id)"),
      h("option", { value: "s3" }, "External S3 (config needs a publishing_config S3 entry)"),
      h("option", { value: "replicate" }, "Replicate's output file only (links expire after an hour)"),
    ),
    publishing.reason,
  );
  const configText = h("textarea", { spellcheck: "false", rows: 12 }, JSON.stringify(EXAMPLE_CONFIG, null, 2));
  const configError = h("p", { class: "field-error", "aria-live": "polite" });
  const [configField] = field("Training config (JSON)", configText);
  const loaderText = h("textarea", { spellcheck: "false", rows: 8 }, JSON.stringify(EXAMPLE_DATALOADER, null, 2));
  const loaderError = h("p", { class: "field-error", "aria-live": "polite" });
  const [loaderField] = field(
    "Dataloader config (JSON list)",
    loaderText,
    "Local datasets go under ./datasets on the server and are named /datasets/<folder>.",
  );
  const estimate = h("p", { "aria-live": "polite" }, "Estimating…");
  const upload = h("p", { class: "muted" });
  const submit = h("button", { type: "submit" }, "Submit job");
  const result = h("div", { "aria-live": "polite" });

  let estimateTimer;
  let estimateSeq = 0; // answers can arrive out of order: only the newest request may write
  let lastLoader = null;
  function changed() {
    newKey();
    const config = parseJson(configText, configError, "object");
    const loader = parseJson(loaderText, loaderError, "list");
    submit.disabled = config === undefined || loader === undefined;
    // Only when the dataloader changed: rewriting the text on every change
    // would shift the layout under the user's pointer.
    if (loader !== undefined && loaderText.value !== lastLoader) {
      lastLoader = loaderText.value;
      upload.textContent = datasetSummary(loader);
    }
    clearTimeout(estimateTimer);
    if (config === undefined) {
      estimate.textContent = "Fix the config to see an estimate.";
      return;
    }
    estimate.textContent = "Estimating…";
    estimateTimer = setTimeout(async () => {
      const seq = ++estimateSeq;
      try {
        const e = await post(paths.costEstimate, {
          config,
          dataloader_config: loader ?? [],
          hardware_profile: hardware.value,
          ...deadlineValue(),
        });
        if (seq !== estimateSeq) return;
        if (e.upload_error) upload.textContent = `Cannot upload: ${e.upload_error}`;
        else if (e.upload && e.upload.files) {
          upload.textContent = `Will zip and upload ${e.upload.datasets.length} dataset${e.upload.datasets.length > 1 ? "s" : ""}: ${e.upload.datasets.map((d) => `${d.id} (${d.file_count} files, ${bytes(d.bytes)})`).join(", ")}; ${e.upload.files} files, ${bytes(e.upload.bytes)} before compression${e.upload.skipped ? `, ${e.upload.skipped} hidden/secret files left out` : ""}.`;
        }
        estimate.textContent = `About ${money(e.estimated_cost_usd)} (${money(e.low_usd)}–${money(e.high_usd)}): ${e.max_train_steps ?? "?"} steps × ${e.seconds_per_step?.toFixed(1)} s/step at $${e.hardware_cost_per_hour?.toFixed(2)}/h (${e.basis === "history" ? "from your past jobs" : "typical speed"}).${e.worst_case_usd != null ? ` At most ${money(e.worst_case_usd)} with the ${e.max_runtime_minutes}-minute deadline.` : ""}`;
      } catch (err) {
        if (seq !== estimateSeq) return;
        estimate.textContent = `No estimate: ${err.message}`;
      }
    }, 300);
  }
  for (const el of [configText, loaderText]) el.addEventListener("input", changed);
  for (const el of [hardware, delivery]) el.addEventListener("change", changed);
  deadline.addEventListener("input", () => {
    deadline.setCustomValidity(
      deadlineValue() === null ? "A whole number of minutes from 1 to 10080 (7 days), or empty." : "",
    );
    deadline.reportValidity();
    newKey();
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
  // plus only the keys edited here, so hidden secrets are never overwritten.
  let loaded = null;
  saved.addEventListener("change", async () => {
    loaded = null;
    if (!saved.value) return;
    try {
      const { config } = await get(paths.config(saved.value));
      loaded = config;
      configText.value = JSON.stringify(config.config, null, 2);
      loaderText.value = JSON.stringify(config.dataloader_config ?? [], null, 2);
      changed();
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
        const config = parseJson(configText, configError, "object");
        const dataloader_config = parseJson(loaderText, loaderError, "list");
        if (config === undefined || dataloader_config === undefined) {
          alertBox("Fix the JSON marked in red before submitting.");
          return;
        }
        if (deadlineValue() === null) {
          alertBox("The deadline must be a whole number of minutes from 1 to 10080 (7 days), or empty.");
          return;
        }
        submit.disabled = true;
        submit.textContent = "Submitting…";
        try {
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
          submit.disabled = false;
          submit.textContent = "Submit job";
        }
      },
    },
    h("h1", {}, "Train in Cloud"),
    h(
      "div",
      { class: "grid2" },
      h(
        "div",
        {},
        savedField,
        runField,
        hwField,
        deadlineField,
        deliveryField,
        h("h3", {}, "Estimated cost"),
        estimate,
        h("h3", {}, "Upload"),
        upload,
      ),
      h("div", {}, configField, configError, loaderField, loaderError),
    ),
    h("div", { class: "row end" }, submit),
    result,
  );
  changed();
  return { el: form };
}
