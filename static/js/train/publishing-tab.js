// Publishing: where the trained model goes — this server (download it from
// the job page), the Hugging Face Hub, or your own S3 — written as the
// config's push_to_hub / hub_model_id / publishing_config, and the delivery
// the submit asks for. Secrets are write-only: a stored one shows as "***"
// and is kept unless replaced.
import { h, field } from "../ui.js";
import { select } from "./form-state.js";

const S3_FIELDS = [
  ["endpoint_url", "Endpoint URL", "url", "https://s3.us-east-1.amazonaws.com"],
  ["bucket", "Bucket", "text", "my-models"],
  ["region", "Region", "text", "us-east-1"],
  ["access_key", "Access key", "password", ""],
  ["secret_key", "Secret key", "password", ""],
];

const s3Entry = (state) => {
  const pc = state.get("publishing_config");
  const list = Array.isArray(pc) ? pc : pc && typeof pc === "object" ? [pc] : [];
  return list.find((e) => e && (e.provider === "s3" || e.provider === "backblaze_b2"));
};

export function publishingTab(state, publishing, delivery) {
  const where = select([
    ["auto", `Automatic (now: ${publishing.default_path || "not ready"})`],
    ["local", "This server: download it from the job page"],
    ["hub", "Hugging Face Hub"],
    ["s3", "My own S3 bucket"],
    ["replicate", "Replicate's output file only (links expire after an hour)"],
  ]);
  where.value = delivery.value;
  const [whereWrap] = field("Send the model to", where, publishing.reason);
  const plan = h("p", { class: "muted", "aria-live": "polite" });

  const repo = h("input", { type: "text", placeholder: "your-name/my-flux-lora" });
  const [repoWrap] = field("Hub repository", repo, "Created if missing; the trainer pushes the LoRA there.");
  const hubWarn = h(
    "p",
    { class: "alert warn", hidden: publishing.hub?.token_configured !== false },
    "This server has no hf_token: an admin must set it (spin up --variable hf_token=hf_...) before Push to Hub can work.",
  );
  const hub = h("div", {}, repoWrap, hubWarn);
  repo.addEventListener("input", () => {
    state.setMany(
      { "--push_to_hub": repo.value.trim() ? true : null, "--hub_model_id": repo.value.trim() || null },
      repo,
    );
  });

  const inputs = {};
  const s3 = h("div", { class: "grid2" });
  for (const [key, label, type, placeholder] of S3_FIELDS) {
    const el = h("input", { type, placeholder, autocomplete: "off" });
    inputs[key] = el;
    const hint = type === "password" ? "Write-only: never shown again once saved." : undefined;
    s3.append(field(label, el, hint)[0]);
    el.addEventListener("input", writeS3);
  }
  function writeS3() {
    const before = s3Entry(state) || {};
    const entry = { provider: "s3" };
    for (const [key, , type] of S3_FIELDS) {
      const v = inputs[key].value.trim();
      // An empty secret field over a stored secret keeps it ("***" is kept by the server).
      if (v) entry[key] = v;
      else if (type === "password" && before[key]) entry[key] = before[key];
    }
    const others = (Array.isArray(state.get("publishing_config")) ? state.get("publishing_config") : []).filter(
      (e) => e !== s3Entry(state),
    );
    state.set("publishing_config", entry.bucket ? [...others, entry] : others.length ? others : undefined, s3);
  }

  function show() {
    repo.value = state.get("hub_model_id") ?? "";
    const e = s3Entry(state) || {};
    for (const [key, , type] of S3_FIELDS) {
      const v = e[key];
      if (type === "password") {
        inputs[key].value = v && v !== "***" ? v : "";
        inputs[key].placeholder = v ? "stored — leave empty to keep" : "";
      } else inputs[key].value = v ?? "";
    }
  }
  function sections() {
    hub.hidden = where.value !== "hub";
    s3.hidden = where.value !== "s3";
    const local = publishing.local || {};
    plan.textContent = {
      auto: `Decided at submit from the config: ${publishing.reason || ""}`,
      local: local.available
        ? `The trainer uploads to ${local.endpoint}/${local.bucket} with per-job credentials; download it from the job page.`
        : `Not available: ${local.reason}.`,
      hub: "The trainer pushes to the repository above with the server's hf_token.",
      s3: "The trainer uploads to your bucket with the keys above.",
      replicate: "Only Replicate's own output link, which expires after an hour.",
    }[where.value];
  }
  where.addEventListener("change", () => {
    delivery.value = where.value;
    delivery.changed();
    sections();
  });
  state.onChange((source) => {
    if (source !== repo && source !== s3 && source !== "validity") show();
  });
  show();
  sections();
  return h("div", {}, whereWrap, hub, s3, plan);
}
