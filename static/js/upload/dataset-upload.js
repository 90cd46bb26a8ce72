// Uploading a dataset from the browser: announce it, send each file to the
// S3 endpoint (`datasets/<name>/<path>`), large files in 8 MiB parts (each
// request under Fermyon Cloud's 10 MB), retrying a failed request; after a
// stop, the same call resumes: stored files are skipped, and an unfinished
// multipart upload continues from its stored parts (ListParts). Only when
// every file is there is the dataset marked ready.
import { api, paths } from "../api.js";

const PART = 8 * 1024 * 1024;
const TRIES = 3;
const storage = (name, path) =>
  `${paths.storage}/datasets/${[name, ...path.split("/")].map(encodeURIComponent).join("/")}`;
const resumeKey = (name, path, size) => `cloudtuner:upload:${name}:${path}:${size}`;

/** One request with upload progress: resolves {status, text, etag}. */
function send(method, url, body, onBytes) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.withCredentials = true;
    if (onBytes) xhr.upload.onprogress = (e) => onBytes(e.loaded);
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, etag: xhr.getResponseHeader("etag") });
    xhr.onerror = () => reject(new Error("the connection failed"));
    xhr.send(body ?? null);
  });
}

/** S3 answers errors as XML: its <Message> in words. */
function s3Message(r) {
  const m = /<Message>([^<]*)<\/Message>/.exec(r.text || "");
  const text = m
    ? m[1]
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, "&")
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
    : "";
  return text || `the server answered ${r.status}`;
}

const pause = (attempt) => new Promise((res) => setTimeout(res, 400 * attempt));

/** Sends with retries (network errors, 5xx, 429); other refusals are final. */
async function sendRetrying(method, url, body, onBytes) {
  for (let attempt = 1; ; attempt++) {
    let r;
    try {
      r = await send(method, url, body, onBytes);
    } catch (e) {
      if (attempt >= TRIES) throw e;
      await pause(attempt);
      continue;
    }
    if (r.status < 300) return r;
    const refused = new Error(s3Message(r));
    if ((r.status < 500 && r.status !== 429) || attempt >= TRIES) throw refused;
    await pause(attempt);
  }
}

async function uploadInParts(name, { path, file }, progress) {
  const url = storage(name, path);
  const key = resumeKey(name, path, file.size);
  let uploadId = localStorage.getItem(key);
  let stored = new Map();
  if (uploadId) {
    const r = await send("GET", `${url}?uploadId=${encodeURIComponent(uploadId)}`);
    if (r.status === 200) {
      for (const m of r.text.matchAll(
        /<Part><PartNumber>(\d+)<\/PartNumber>.*?<ETag>([^<]*)<\/ETag><Size>(\d+)<\/Size><\/Part>/g,
      )) {
        stored.set(Number(m[1]), { etag: m[2].replace(/&quot;/g, '"'), size: Number(m[3]) });
      }
    } else {
      uploadId = null;
      stored = new Map();
    }
  }
  if (!uploadId) {
    const r = await sendRetrying("POST", `${url}?uploads`);
    uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(r.text)[1];
    localStorage.setItem(key, uploadId);
  }
  const parts = [];
  const count = Math.ceil(file.size / PART);
  for (let n = 1; n <= count; n++) {
    const blob = file.slice((n - 1) * PART, Math.min(n * PART, file.size));
    const have = stored.get(n);
    if (have && have.size === blob.size) {
      parts.push([n, have.etag]);
      progress.skip(blob.size);
      continue;
    }
    const r = await sendRetrying("PUT", `${url}?partNumber=${n}&uploadId=${encodeURIComponent(uploadId)}`, blob, (b) =>
      progress.current(b),
    );
    progress.add(blob.size);
    parts.push([n, r.etag]);
  }
  const xml = `<CompleteMultipartUpload>${parts.map(([n, e]) => `<Part><PartNumber>${n}</PartNumber><ETag>${e}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
  await sendRetrying("POST", `${url}?uploadId=${encodeURIComponent(uploadId)}`, xml);
  localStorage.removeItem(key);
}

/**
 * Uploads `files` ([{path, file}]) as dataset `name`. `onProgress` gets
 * {files, filesTotal, bytes, bytesTotal, rate (B/s), eta (s)}.
 */
export async function uploadDataset(name, files, onProgress) {
  await api("POST", paths.datasets, { name, files: files.length });
  const existing = await api("GET", paths.dataset(name));
  const have = new Map((existing.files || []).map((f) => [f.path, f.size]));
  const bytesTotal = files.reduce((n, f) => n + f.file.size, 0);
  const started = performance.now();
  let done = 0;
  let inFlight = 0;
  let filesDone = 0;
  let sentHere = 0; // bytes sent by this call (for the speed; skipped files are not sent)
  const report = () => {
    const secs = (performance.now() - started) / 1000;
    const rate = secs > 0 ? sentHere / secs : 0;
    const bytes = done + inFlight;
    onProgress({
      files: filesDone,
      filesTotal: files.length,
      bytes,
      bytesTotal,
      rate,
      eta: rate > 0 ? (bytesTotal - bytes) / rate : null,
    });
  };
  const progress = {
    current(b) {
      inFlight = b;
      report();
    },
    add(b) {
      done += b;
      sentHere += b;
      inFlight = 0;
      report();
    },
    skip(b) {
      done += b;
      report();
    },
  };
  report();
  for (const f of files) {
    try {
      if (have.get(f.path) === f.file.size) progress.skip(f.file.size);
      else if (f.file.size > PART) await uploadInParts(name, f, progress);
      else {
        await sendRetrying("PUT", storage(name, f.path), f.file, (b) => progress.current(b));
        progress.add(f.file.size);
      }
    } catch (e) {
      throw new Error(`${f.path}: ${e.message}`);
    }
    filesDone++;
    report();
  }
  return api("PATCH", paths.dataset(name), { state: "ready" });
}
