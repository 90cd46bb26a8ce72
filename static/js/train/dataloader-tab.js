// Dataloader: the datasets a training reads, each from a dataset uploaded to
// this server (the folder picker is right here), a URL, a Hugging Face
// dataset or a folder under ./datasets on the server; with captions,
// resolution, repeats and crop, and what each will upload.
import { get, paths } from "../api.js";
import { h, field, bytes } from "../ui.js";
import { select } from "./form-state.js";
import { uploadPanel } from "./upload-panel.js";

const SOURCES = [
  ["uploaded", "Uploaded to this server"],
  ["url", "A URL (zip or tar the trainer downloads)"],
  ["huggingface", "A Hugging Face dataset"],
  ["server", "A folder under ./datasets on the server"],
];
const CAPTIONS = [
  ["textfile", "Text file next to each image (.txt)"],
  ["filename", "The file name"],
  ["instanceprompt", "One instance prompt for all"],
  ["parquet", "A parquet table"],
  ["huggingface", "From the Hugging Face dataset"],
];

export function sourceOf(entry) {
  const dir = entry.instance_data_dir ?? "";
  if (entry.type === "huggingface") return "huggingface";
  if (dir.startsWith("dataset://")) return "uploaded";
  if (/^https?:\/\//.test(dir)) return "url";
  return dir ? "server" : "uploaded";
}

export function dataloaderTab(state) {
  let uploads = [];
  // Each card's upload panel outlives the card's re-renders, so its progress
  // bar and "Uploaded …" message stay after the upload completes.
  const panels = new Map();
  const list = h("div", { class: "datasets" });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const entries = () => state.dataloader.map((d) => ({ ...d }));
  const write = (next) => state.setDataloader(next, list);

  async function refreshUploads() {
    try {
      uploads = (await get(paths.datasets)).datasets;
    } catch {
      uploads = [];
    }
  }

  function panelFor(i) {
    if (!panels.has(i)) {
      panels.set(
        i,
        uploadPanel(async ({ name }) => {
          await refreshUploads();
          const next = entries();
          next[i] = {
            ...next[i],
            type: "local",
            instance_data_dir: `dataset://${name}`,
            id: next[i].id || name,
          };
          write(next);
          render();
        }),
      );
    }
    return panels.get(i);
  }

  function card(entry, i) {
    const update = (patch) => {
      const next = entries();
      next[i] = { ...next[i], ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined || v === "") delete next[i][k];
      write(next);
      line.textContent = describe(next[i]);
    };
    const source = sourceOf(entry);
    const id = h("input", {
      type: "text",
      value: entry.id ?? "",
      placeholder: "my-dataset",
    });
    id.addEventListener("input", () => update({ id: id.value.trim() }));
    const src = select(SOURCES);
    src.value = source;
    src.addEventListener("change", () => {
      const patch = {
        type: src.value === "huggingface" ? "huggingface" : "local",
        instance_data_dir: undefined,
        dataset_name: undefined,
      };
      update(patch);
      render();
    });
    const where = h("div");
    if (source === "uploaded") {
      const pick = select([
        ["", uploads.length ? "Choose an uploaded dataset…" : "No uploaded datasets yet: upload a folder below"],
        ...uploads.map((d) => [
          d.name,
          `${d.name} — ${d.file_count} files, ${bytes(d.bytes)}${d.state === "ready" ? "" : " (upload not finished)"}`,
        ]),
      ]);
      pick.value = (entry.instance_data_dir ?? "").replace(/^dataset:\/\//, "");
      pick.addEventListener("change", () => {
        update({
          type: "local",
          instance_data_dir: pick.value ? `dataset://${pick.value}` : undefined,
          ...(!id.value.trim() && pick.value ? { id: pick.value } : {}),
        });
        if (!id.value.trim()) id.value = pick.value;
      });
      const [pickWrap] = field("Uploaded dataset", pick);
      where.append(pickWrap, panelFor(i));
    } else if (source === "url") {
      const url = h("input", {
        type: "url",
        value: entry.instance_data_dir ?? "",
        placeholder: "https://example.com/cats.zip",
      });
      url.addEventListener("input", () => update({ type: "local", instance_data_dir: url.value.trim() }));
      where.append(field("Dataset URL", url)[0]);
    } else if (source === "huggingface") {
      const repo = h("input", {
        type: "text",
        value: entry.dataset_name ?? "",
        placeholder: "user/dataset",
      });
      repo.addEventListener("input", () => update({ type: "huggingface", dataset_name: repo.value.trim() }));
      where.append(field("Hugging Face dataset", repo)[0]);
    } else {
      const dir = h("input", {
        type: "text",
        value: entry.instance_data_dir ?? "",
        placeholder: "/datasets/cats",
      });
      dir.addEventListener("input", () => update({ type: "local", instance_data_dir: dir.value.trim() }));
      where.append(field("Folder on the server", dir, "Under ./datasets next to spin.toml (spin up only).")[0]);
    }
    const caption = select(CAPTIONS);
    caption.value = entry.caption_strategy ?? "textfile";
    caption.addEventListener("change", () => update({ caption_strategy: caption.value }));
    // A number field of this entry: empty removes the key.
    const numberInput = (key, attrs) => {
      const el = h("input", { type: "number", value: entry[key] ?? "", ...attrs });
      el.addEventListener("input", () => update({ [key]: el.value ? Number(el.value) : undefined }));
      return el;
    };
    const res = numberInput("resolution", { min: 64, max: 4096, step: 8, placeholder: "as in Training" });
    const resType = select([
      ["pixel_area", "pixel area (keeps aspect)"],
      ["pixel", "pixels on the short side"],
      ["area", "megapixels"],
    ]);
    resType.value = entry.resolution_type ?? "pixel_area";
    resType.addEventListener("change", () => update({ resolution_type: resType.value }));
    const repeats = numberInput("repeats", { min: 0, max: 1000, step: 1, placeholder: "0" });
    const crop = h("input", { type: "checkbox", checked: entry.crop === true });
    crop.addEventListener("change", () => update({ crop: crop.checked }));
    const line = h("p", { class: "muted" }, describe(entry));
    return h(
      "fieldset",
      { class: "panel dataset", "data-dataset": i },
      h("legend", {}, `Dataset ${i + 1}`),
      h("div", { class: "grid2" }, field("Dataset id", id)[0], field("Source", src)[0]),
      where,
      h(
        "div",
        { class: "grid2" },
        field("Captions", caption)[0],
        field("Resolution", res)[0],
        field("Resolution type", resType)[0],
        field("Repeats", repeats, "Extra passes over this dataset per epoch.")[0],
      ),
      h("label", { class: "inline" }, crop, " Crop images to the resolution"),
      line,
      h(
        "div",
        { class: "row end" },
        h(
          "button",
          {
            type: "button",
            class: "secondary small",
            onclick: () => {
              write(entries().filter((_, j) => j !== i));
              panels.clear();
              render();
            },
          },
          `Remove dataset ${i + 1}`,
        ),
      ),
    );
  }

  function describe(entry) {
    const s = sourceOf(entry);
    if (s === "uploaded") {
      const name = (entry.instance_data_dir ?? "").replace(/^dataset:\/\//, "");
      const d = uploads.find((u) => u.name === name);
      if (!name) return "Choose an uploaded dataset or upload a folder.";
      if (!d) return `No uploaded dataset named ${name}.`;
      return `Will upload ${d.file_count} files (${d.image_files} images, ${d.caption_files} captions), ${bytes(d.bytes)}, zipped at submit.${d.state === "ready" ? "" : " Its upload has not finished."}`;
    }
    if (s === "server") return "Zipped from the server's ./datasets folder at submit.";
    return "Fetched by the trainer: nothing is uploaded from here.";
  }

  function render() {
    list.replaceChildren(...state.dataloader.map(card));
    summary.textContent = state.dataloader.length
      ? `${state.dataloader.length} dataset${state.dataloader.length > 1 ? "s" : ""}.`
      : "No datasets yet.";
  }
  state.onChange((source) => {
    if (source !== list && source !== "validity") render();
  });
  const add = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: () => {
        write([...entries(), { id: "", type: "local", caption_strategy: "textfile" }]);
        render();
      },
    },
    "Add dataset",
  );
  const panel = h("div", {}, summary, list, h("div", { class: "row" }, add));
  refreshUploads().then(render);
  render();
  return panel;
}
