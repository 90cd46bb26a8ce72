// Model: family and flavour from SimpleTuner's catalog, LoRA or full, LoRA
// rank/alpha and kind (standard or LyCORIS, with its config as JSON), and the
// base model (the flavour's, filled in when picked).
import { h } from "../ui.js";
import { bound, select, whole } from "./form-state.js";

export function modelTab(state, catalog) {
  const families = catalog.families;
  const byName = new Map(families.map((f) => [f.family, f]));
  const family = select([
    ["", "Choose a model family…"],
    ...families.map((f) => [f.family, `${f.name} (${f.family})`]),
  ]);
  const flavour = h("select");
  const base = h("input", {
    type: "text",
    placeholder: "a Hugging Face repo or a path the trainer can read",
  });
  const type = select([
    ["lora", "LoRA (small adapter, fast, cheap)"],
    ["full", "Full fine-tune (all weights)"],
  ]);
  const rank = h("input", {
    type: "number",
    min: 1,
    max: 1024,
    step: 1,
    inputmode: "numeric",
  });
  const loraType = select([
    ["standard", "Standard LoRA"],
    ["lycoris", "LyCORIS (LoKr, LoHa, …)"],
  ]);
  const lycoris = h("textarea", {
    rows: 6,
    spellcheck: "false",
    placeholder: '{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "factor": 16}',
  });
  const alpha = h("input", {
    type: "number",
    min: 1,
    max: 1024,
    step: 1,
    inputmode: "numeric",
  });

  const flavourOptions = () => {
    const f = byName.get(state.get("model_family"));
    const current = state.get("model_flavour");
    flavour.replaceChildren(
      ...(f ? f.flavours : []).map((v) =>
        h("option", { value: v.flavour, selected: v.flavour === current }, v.flavour),
      ),
    );
    flavour.disabled = !f;
    if (current !== undefined) flavour.value = current;
  };
  const baseModelOf = (fam, flav) => fam?.flavours.find((v) => v.flavour === flav)?.base_model;

  // Picking a family starts from its defaults (kept where already set), and
  // its default flavour's base model; picking a flavour swaps the base model.
  family.addEventListener("change", () => {
    const f = byName.get(family.value);
    if (!f) return;
    const fill = {};
    for (const [k, v] of Object.entries(f.defaults)) if (state.get(k) === undefined) fill[k] = v;
    fill["--model_family"] = f.family;
    fill["--model_flavour"] = f.default_flavour;
    fill["--pretrained_model_name_or_path"] = baseModelOf(f, f.default_flavour) ?? null;
    state.setMany(fill, "model-family");
  });
  flavour.addEventListener("change", () => {
    const f = byName.get(state.get("model_family"));
    state.setMany(
      {
        "--model_flavour": flavour.value,
        "--pretrained_model_name_or_path": baseModelOf(f, flavour.value) ?? null,
      },
      "model-flavour",
    );
  });
  const loraOnly = h(
    "div",
    { class: "grid2" },
    bound(state, "lora_rank", "LoRA rank", rank, {
      parse: Number,
      check: whole(1, 1024),
      hint: "Adapter size: 16 is a good start; higher learns more and is bigger.",
    }),
    bound(state, "lora_alpha", "LoRA alpha", alpha, {
      parse: Number,
      check: whole(1, 1024),
      hint: "Usually equal to the rank.",
    }),
    bound(state, "lora_type", "LoRA kind", loraType),
  );
  // LyCORIS needs its settings file; the trainer gets its JSON (this server
  // cannot read a path on your machine).
  const lycorisOnly = bound(state, "lycoris_config", "LyCORIS config (JSON)", lycoris, {
    parse: (raw) => JSON.parse(raw),
    check: (raw) => {
      try {
        const v = JSON.parse(raw);
        return v && typeof v === "object" && !Array.isArray(v) ? null : 'a JSON object, e.g. {"algo": "lokr"}';
      } catch {
        return 'a JSON object, e.g. {"algo": "lokr"}';
      }
    },
    format: (v) => (typeof v === "object" ? JSON.stringify(v, null, 2) : v),
    hint: "The contents of your LyCORIS config file (algo, factor, …); needed for LyCORIS.",
  });
  const showLora = () => {
    const lora = (state.get("model_type") ?? "lora") === "lora";
    loraOnly.hidden = !lora;
    lycorisOnly.hidden = !lora || state.get("lora_type") !== "lycoris";
  };
  const familyWrap = bound(state, "model_family", "Model family", family, {
    hint: `SimpleTuner ${catalog.simpletuner_version}'s model families.`,
  });
  state.onChange((source) => {
    if (source === "validity") return;
    if (source !== flavour) flavourOptions();
    showLora();
  });
  const panel = h(
    "div",
    {},
    h("div", { class: "grid2" }, familyWrap, bound(state, "model_flavour", "Flavour", flavour)),
    bound(state, "pretrained_model_name_or_path", "Base model", base, {
      hint: "Filled in with the flavour's model; change it to train from another checkpoint.",
    }),
    bound(state, "model_type", "Training type", type),
    loraOnly,
    lycorisOnly,
  );
  flavourOptions();
  showLora();
  return panel;
}
