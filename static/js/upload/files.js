// Choosing a dataset's files: a folder picker or a dropped folder, each file
// with its path inside the folder, and what is left out (and why) before
// anything is sent. The server applies the same rules.

const SECRET = new Set(["env", "pem", "key", "crt", "p12", "pfx"]);
export const MAX_FILE_BYTES = 100 * 1024 * 1024;

/** Why a file is not uploaded, or null. */
export function refusal(path, size) {
  const segments = path.split("/");
  if (segments.some((s) => s.startsWith("."))) return "hidden file";
  const ext = (segments.at(-1).split(".").length > 1 ? segments.at(-1).split(".").pop() : "").toLowerCase();
  if (SECRET.has(ext)) return "looks like a key or secret";
  if (size > MAX_FILE_BYTES) return "over 100 MiB";
  return null;
}

/** A dataset name from a folder name: letters, digits, '-', '_', '.'. */
export function datasetName(folder) {
  const name = (folder || "dataset")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[.-]+/, "")
    .slice(0, 64);
  return name || "dataset";
}

/**
 * Splits picked files into {folder, accepted: [{path, file}], rejected: [{path, why}]}.
 * `entries` are [{path, file}] with the path starting at the folder picked.
 */
export function sortOut(entries) {
  const folder = entries[0]?.path.split("/")[0] ?? "";
  const accepted = [];
  const rejected = [];
  for (const { path, file } of entries) {
    const inner = path.split("/").slice(1).join("/") || path;
    const why = refusal(inner, file.size);
    if (why) rejected.push({ path: inner, why });
    else accepted.push({ path: inner, file });
  }
  accepted.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { folder, accepted, rejected };
}

/** From `<input type=file webkitdirectory>`. */
export const fromInput = (input) =>
  [...input.files].map((file) => ({ path: file.webkitRelativePath || file.name, file }));

/** From a drop of one folder (DataTransfer entries, read recursively). */
export async function fromDrop(dataTransfer) {
  const out = [];
  const readAll = (reader) =>
    new Promise((resolve, reject) => {
      const all = [];
      const next = () =>
        reader.readEntries((batch) => {
          if (!batch.length) resolve(all);
          else {
            all.push(...batch);
            next();
          }
        }, reject);
      next();
    });
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ path: `${prefix}${entry.name}`, file });
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, `${prefix}${entry.name}/`);
    }
  }
  for (const item of [...dataTransfer.items]) {
    const entry = item.webkitGetAsEntry?.();
    if (entry) await walk(entry, "");
  }
  return out;
}
