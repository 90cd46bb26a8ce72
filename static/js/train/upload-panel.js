// "Upload a folder": pick (or drop) a folder, see what will go and what is
// left out, name the dataset, upload with a progress bar (files, bytes,
// speed, time left), resume after a failure.
import { h, field, bytes, duration, progressBar, setProgress } from "../ui.js";
import { fromInput, fromDrop, sortOut, datasetName } from "../upload/files.js";
import { uploadDataset } from "../upload/dataset-upload.js";

// `onUploaded(dataset)` runs once every file is stored and the dataset is ready.
export function uploadPanel(onUploaded) {
  let picked = null;
  const input = h("input", { type: "file", webkitdirectory: true, multiple: true });
  const [inputWrap] = field(
    "Choose a folder",
    input,
    "Images and their caption files; hidden files and keys stay behind.",
  );
  const drop = h("div", { class: "dropzone", tabindex: "-1" }, "…or drop a folder here");
  const name = h("input", { type: "text", maxlength: 64, pattern: "[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*" });
  const [nameWrap] = field("Dataset name", name, "How configs refer to it: dataset://<name>.");
  const what = h("div", { "aria-live": "polite" });
  const bar = progressBar(0, "Upload progress");
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const progressBox = h("div", { hidden: true }, bar, status);
  const go = h("button", { type: "button", disabled: true }, "Upload");
  const resume = h("button", { type: "button", class: "secondary", hidden: true }, "Resume upload");
  const details = h("div", { hidden: true }, nameWrap, what, h("div", { class: "row" }, go, resume));

  function show(entries) {
    picked = sortOut(entries);
    details.hidden = false;
    name.value = datasetName(picked.folder);
    const total = picked.accepted.reduce((n, f) => n + f.file.size, 0);
    what.replaceChildren(
      h("p", {}, `${picked.accepted.length} files, ${bytes(total)} will be uploaded.`),
      picked.rejected.length
        ? h(
            "ul",
            { class: "rejected", "aria-label": "Left out" },
            picked.rejected.map((r) => h("li", {}, `${r.path}: ${r.why}, not uploaded`)),
          )
        : null,
    );
    go.disabled = picked.accepted.length === 0;
  }
  input.addEventListener("change", () => show(fromInput(input)));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    show(await fromDrop(e.dataTransfer));
  });

  function progress(p) {
    setProgress(bar, p.bytesTotal ? (100 * p.bytes) / p.bytesTotal : 100);
    const speed = p.rate ? ` · ${bytes(p.rate)}/s` : "";
    const eta = p.eta != null && p.bytes < p.bytesTotal ? ` · about ${duration(p.eta)} left` : "";
    status.textContent = `${p.files} of ${p.filesTotal} files · ${bytes(p.bytes)} of ${bytes(p.bytesTotal)}${speed}${eta}`;
  }

  async function run() {
    if (!picked) return;
    if (!name.checkValidity() || !name.value) {
      status.textContent = "Name the dataset: letters, digits, '-', '_' or '.'.";
      progressBox.hidden = false;
      return;
    }
    go.disabled = true;
    resume.hidden = true;
    name.disabled = true;
    progressBox.hidden = false;
    try {
      const d = await uploadDataset(name.value, picked.accepted, progress);
      status.textContent = `Uploaded ${d.name}: ${d.file_count} files, ${bytes(d.bytes)}.`;
      await onUploaded(d);
    } catch (e) {
      status.textContent = `Upload stopped: ${e.message}. Nothing is used until every file is there; resume to send the rest.`;
      resume.hidden = false;
      go.disabled = false;
      name.disabled = e.code === undefined;
    }
  }
  go.addEventListener("click", run);
  resume.addEventListener("click", run);
  return h("div", { class: "upload" }, h("h4", {}, "Upload a folder"), inputWrap, drop, details, progressBox);
}
