// Training: length, optimiser schedule, batch, resolution, precision, seed,
// validation and checkpoints, in SimpleTuner's argument names.
import { h, field } from "../ui.js";
import { bound, select, whole, positive } from "./form-state.js";

const SCHEDULERS = [
  "constant",
  "constant_with_warmup",
  "cosine",
  "cosine_with_restarts",
  "polynomial",
  "linear",
  "sine",
];

const num = (attrs = {}) => h("input", { type: "number", inputmode: "decimal", ...attrs });

export function trainingTab(state) {
  const stopBy = select([
    ["steps", "a number of steps"],
    ["epochs", "a number of epochs"],
  ]);
  const steps = num({ min: 1, step: 1 });
  const epochs = num({ min: 1, step: 1 });
  const stepsWrap = bound(state, "max_train_steps", "Max steps", steps, {
    parse: Number,
    check: whole(1, 10_000_000),
    hint: "Also what the cost estimate counts.",
  });
  const epochsWrap = bound(state, "num_train_epochs", "Epochs", epochs, { parse: Number, check: whole(1, 100_000) });
  const showStop = () => {
    const byEpochs = stopBy.value === "epochs";
    stepsWrap.hidden = byEpochs;
    epochsWrap.hidden = !byEpochs;
  };
  stopBy.addEventListener("change", () => {
    // SimpleTuner trains by epochs when max_train_steps is 0.
    if (stopBy.value === "epochs")
      state.setMany({ "--max_train_steps": 0, "--num_train_epochs": state.get("num_train_epochs") ?? 10 }, stopBy);
    else state.setMany({ "--max_train_steps": 1000, "--num_train_epochs": null }, stopBy);
    showStop();
  });
  state.onChange((source) => {
    if (source === stopBy || source === "validity") return;
    stopBy.value = Number(state.get("max_train_steps")) === 0 && state.get("num_train_epochs") ? "epochs" : "steps";
    showStop();
  });
  const [stopWrap] = field("Stop after", stopBy);
  const grid = (...c) => h("div", { class: "grid2" }, ...c);
  const panel = h(
    "div",
    {},
    grid(stopWrap, h("div", {}, stepsWrap, epochsWrap)),
    grid(
      bound(state, "learning_rate", "Learning rate", num({ step: "any" }), {
        parse: Number,
        check: positive(1),
        hint: "1e-4 suits most LoRAs; full fine-tunes use ~1e-5.",
      }),
      bound(state, "lr_scheduler", "Scheduler", select(SCHEDULERS.map((s) => [s, s]))),
    ),
    grid(
      bound(state, "train_batch_size", "Batch size", num({ min: 1, step: 1 }), {
        parse: Number,
        check: whole(1, 1024),
      }),
      bound(state, "gradient_accumulation_steps", "Gradient accumulation", num({ min: 1, step: 1 }), {
        parse: Number,
        check: whole(1, 1024),
        hint: "Steps summed before each update: a bigger effective batch without more memory.",
      }),
    ),
    grid(
      bound(state, "resolution", "Resolution", num({ min: 64, max: 4096, step: 8 }), {
        parse: Number,
        check: whole(64, 4096),
        hint: "Pixels per side the images are trained at.",
      }),
      bound(
        state,
        "mixed_precision",
        "Mixed precision",
        select([
          ["bf16", "bf16 (recommended)"],
          ["fp16", "fp16"],
          ["no", "off (fp32)"],
        ]),
      ),
    ),
    grid(
      bound(state, "seed", "Seed", num({ min: 0, step: 1 }), { parse: Number, check: whole(0, 2 ** 32 - 1) }),
      bound(state, "checkpointing_steps", "Checkpoint every (steps)", num({ min: 1, step: 1 }), {
        parse: Number,
        check: whole(1, 10_000_000),
      }),
    ),
    grid(
      bound(
        state,
        "validation_prompt",
        "Validation prompt",
        h("input", { type: "text", placeholder: "a photo of sks cat" }),
        {
          hint: "Sampled while training, so you can watch it learn.",
        },
      ),
      bound(state, "validation_steps", "Validate every (steps)", num({ min: 1, step: 1 }), {
        parse: Number,
        check: whole(1, 10_000_000),
      }),
    ),
  );
  showStop();
  return panel;
}
