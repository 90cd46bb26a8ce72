// Job details: facts, live progress, loss chart, logs (follow + search),
// outputs, cancel/delete, and a curl line for scripts.
import { get, post, del, paths } from "../api.js";
import {
  h,
  s,
  alertBox,
  confirmDialog,
  copyButton,
  toast,
  money,
  duration,
  bytes,
  statusBadge,
  progressBar,
} from "../ui.js";

const ACTIVE = new Set(["pending", "uploading", "queued", "running"]);
const RERUNNABLE = new Set(["failed", "cancelled"]);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function lossChart(history) {
  const title = "Training loss by step";
  if (!history || history.length < 2) {
    return h("p", { class: "muted" }, "The loss chart appears once training reports a few steps.");
  }
  const steps = history.map((p) => p[0]);
  const losses = history.map((p) => p[1]);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  const [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  const W = 600,
    H = 180,
    pad = 24;
  const x = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const y = (v) => H - pad - ((v - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const points = history.map(([st, l]) => `${x(st).toFixed(1)},${y(l).toFixed(1)}`).join(" ");
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `${title}: from ${y1.toFixed(4)} down to ${losses.at(-1).toFixed(4)} at step ${x1}`,
    },
    s("title", {}, title),
    s("polyline", { points }),
    s("text", { x: pad, y: 14 }, `loss ${y1.toFixed(4)}`),
    s("text", { x: pad, y: H - 6 }, `step ${x0}`),
    s("text", { x: W - pad - 60, y: H - 6 }, `step ${x1}`),
  );
}

export async function jobView(id) {
  const state = { timer: null, stopped: false, offset: 0, logText: "", key: "", stream: null };
  const path = paths.job(id);
  const title = h("h1", {}, "Job");
  const facts = h("div", { class: "panel" });
  const live = h("div");
  const chart = h("div");
  const outputs = h("div");
  const actions = h("div", { class: "row" });
  const follow = h("input", { type: "checkbox", checked: true });
  const search = h("input", { type: "search", placeholder: "Search logs", "aria-label": "Search logs" });
  const matches = h("span", { class: "muted small", "aria-live": "polite" });
  const logs = h("pre", { class: "logs", tabindex: "0", "aria-label": "Job logs" });
  search.addEventListener("input", () => renderLogs());

  function renderLogs() {
    const term = search.value.trim().toLowerCase();
    if (!term) {
      logs.replaceChildren(state.logText || "No logs yet.");
      matches.textContent = "";
    } else {
      const lines = state.logText.split("\n").filter((l) => l.toLowerCase().includes(term));
      logs.replaceChildren(
        ...lines.flatMap((l) => {
          const i = l.toLowerCase().indexOf(term);
          return [l.slice(0, i), h("mark", {}, l.slice(i, i + term.length)), l.slice(i + term.length), "\n"];
        }),
      );
      matches.textContent = `${lines.length} matching line${lines.length === 1 ? "" : "s"}`;
    }
    if (follow.checked) logs.scrollTop = logs.scrollHeight;
  }

  const root = h(
    "section",
    {},
    h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")),
    title,
    actions,
    facts,
    h(
      "div",
      { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Progress"), live, chart),
      h("div", { class: "panel" }, h("h2", {}, "Model output"), outputs),
    ),
    h(
      "div",
      { class: "panel" },
      h(
        "div",
        { class: "row between" },
        h("h2", {}, "Logs"),
        h("div", { class: "row" }, search, h("label", { class: "inline" }, follow, "Follow")),
      ),
      matches,
      logs,
    ),
  );

  function render(j) {
    const name = j.metadata?.tracker_run_name || j.config_name || `Job ${j.job_id.slice(0, 8)}`;
    title.replaceChildren(name, " ", statusBadge(j.status));
    const curl = `curl -s -H "Authorization: Bearer $CLOUDTUNER_API_KEY" ${location.origin}${path} | jq .job.status`;
    facts.replaceChildren(
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Job ID"),
        h("dd", { class: "mono" }, j.job_id),
        h("dt", {}, "Status"),
        h(
          "dd",
          {},
          statusBadge(j.status),
          j.metadata?.provider_status
            ? h("span", { class: "muted small" }, ` (Replicate: ${j.metadata.provider_status})`)
            : "",
        ),
        h("dt", {}, "Hardware"),
        h("dd", {}, j.hardware_type),
        j.max_runtime_minutes && [
          h("dt", {}, "Deadline"),
          h("dd", {}, `${j.max_runtime_minutes} minutes after submit (${when(j.deadline_at)})`),
        ],
        j.attempt > 1 && [
          h("dt", {}, "Attempt"),
          h(
            "dd",
            {},
            `${j.attempt}, re-run of `,
            h("a", { href: `#/job/${encodeURIComponent(j.retry_of)}`, class: "mono" }, j.retry_of.slice(0, 8)),
          ),
        ],
        h("dt", {}, "Config"),
        h("dd", {}, j.config_name || "inline"),
        h("dt", {}, "Cost"),
        h(
          "dd",
          {},
          money(j.cost_usd),
          j.cost_usd == null ? "" : j.cost_estimated ? " (estimated, still running)" : " (final)",
        ),
        h("dt", {}, "Created"),
        h("dd", {}, when(j.created_at)),
        h("dt", {}, "Started"),
        h("dd", {}, when(j.started_at)),
        h("dt", {}, "Finished"),
        h("dd", {}, when(j.completed_at)),
        h("dt", {}, "Duration"),
        h("dd", {}, duration(j.duration_seconds)),
        j.error_message && [h("dt", {}, "Error"), h("dd", { class: "field-error" }, j.error_message)],
      ),
      h("h3", {}, "Config snapshot (secrets hidden)"),
      h("pre", { class: "snippet" }, JSON.stringify(j.metadata?.config_snapshot ?? {}, null, 2)),
      h("h3", {}, "From a script"),
      h(
        "div",
        { class: "row" },
        h("pre", { class: "snippet", "aria-label": "curl command" }, curl),
        copyButton(() => curl, "Copy curl"),
      ),
    );
    const p = j.progress;
    live.replaceChildren(
      p && j.status === "running"
        ? h(
            "div",
            {},
            progressBar(p.percent ?? 0, "Training progress"),
            h(
              "p",
              {},
              p.step != null ? `Step ${p.step}${p.total_steps ? ` of ${p.total_steps}` : ""}` : p.stage || "Starting",
              p.loss != null ? ` · loss ${Number(p.loss).toFixed(4)}` : "",
              p.eta_seconds != null ? ` · about ${duration(p.eta_seconds)} left` : "",
            ),
          )
        : h(
            "p",
            { class: "muted" },
            {
              pending: "Preparing the job…",
              uploading: "Uploading datasets…",
              queued: "Waiting for a GPU on Replicate…",
              completed: "Training finished.",
              failed: "Training failed.",
              cancelled: "The job was cancelled.",
            }[j.status] || "",
          ),
    );
    chart.replaceChildren(lossChart(j.loss_history));
    // replaceChildren would print a `false` as text: only the buttons that apply go in.
    const buttons = [
      ACTIVE.has(j.status)
        ? h("button", { type: "button", class: "danger", onclick: () => cancel(j) }, "Cancel job")
        : h("button", { type: "button", class: "secondary", onclick: () => remove(j) }, "Delete job"),
    ];
    if (RERUNNABLE.has(j.status)) buttons.push(h("button", { type: "button", onclick: () => rerun(j) }, "Re-run"));
    actions.replaceChildren(...buttons);
  }

  // Says where a link goes: Replicate's delivery links are temporary.
  function outputLabel(url) {
    if (url.startsWith("https://huggingface.co/")) return "Hugging Face Hub repository";
    if (url.startsWith(`${location.origin}${paths.storage}/`)) return `${url.split("/").pop()} (stored on this server)`;
    if (url.startsWith("https://replicate.delivery/"))
      return `${url.split("/").pop()} (Replicate's copy: its link may expire, download it soon)`;
    return url;
  }

  // A file stored on this server downloads, never opens here: it is the
  // trainer's bytes, and a page of ours would run them as this origin. Its
  // name to save as; undefined for links elsewhere (no download attribute).
  function storedName(url) {
    if (!url.startsWith(`${location.origin}${paths.storage}/`) && !url.startsWith(`${paths.storage}/`))
      return undefined;
    const last = url.split("?")[0].split("/").pop() || "output";
    try {
      return decodeURIComponent(last);
    } catch {
      return last;
    }
  }

  async function renderOutputs(j) {
    const items = [];
    const paths = j.delivery?.paths || [];
    if (j.output_url) {
      const link = { href: j.output_url, rel: "noopener", download: storedName(j.output_url) };
      items.push(h("p", {}, "Output: ", h("a", link, outputLabel(j.output_url))));
    }
    if (paths.includes("local")) {
      try {
        const o = await get(`${path}/outputs`);
        items.push(
          o.outputs.length
            ? h(
                "ul",
                {},
                o.outputs.map((f) =>
                  h("li", {}, h("a", { href: f.download_path, download: f.name }, f.name), ` (${bytes(f.size)})`),
                ),
              )
            : h("p", { class: "muted" }, "Files the trainer uploads to this server appear here."),
        );
      } catch (e) {
        items.push(h("p", { class: "field-error" }, `Could not list outputs: ${e.message}`));
      }
    }
    if (!items.length)
      items.push(
        h(
          "p",
          { class: "muted" },
          j.status === "completed" ? "Check the logs for the output location." : "Available when training finishes.",
        ),
      );
    items.push(
      h(
        "p",
        { class: "muted small" },
        `Delivery: ${paths.join(", ") || "replicate"}${j.delivery?.reason ? ` (${j.delivery.reason})` : ""}`,
      ),
    );
    outputs.replaceChildren(...items);
  }

  // One idempotency key per job view: a double click re-runs once.
  const rerunKey = crypto.randomUUID();
  async function rerun(j) {
    if (
      !(await confirmDialog(
        "Re-run this job?",
        `A new job (attempt ${(j.attempt || 1) + 1}) trains the same config, datasets and hardware again, and is billed again.`,
        "Re-run",
      ))
    )
      return;
    try {
      const r = await post(`${path}/retry`, { idempotency_key: rerunKey });
      toast(`Re-run submitted (attempt ${(j.attempt || 1) + 1})`);
      location.hash = `#/job/${encodeURIComponent(r.job_id)}`;
    } catch (e) {
      alertBox(`Could not re-run: ${e.message}`);
    }
  }

  async function cancel(j) {
    if (
      !(await confirmDialog(
        "Cancel this job?",
        "Training stops on Replicate; time used so far is still billed.",
        "Cancel job",
      ))
    )
      return;
    try {
      await post(`${path}/cancel`);
      toast("Cancel requested");
      refresh();
    } catch (e) {
      alertBox(`Could not cancel: ${e.message}`);
    }
  }

  async function remove(j) {
    if (
      !(await confirmDialog(
        "Delete this job?",
        "It leaves the job list and its stored outputs are deleted. This cannot be undone.",
        "Delete job",
      ))
    )
      return;
    try {
      await del(path);
      toast("Job deleted");
      location.hash = "#/jobs";
    } catch (e) {
      alertBox(`Could not delete: ${e.message}`);
    }
  }

  // New log lines arrive as server-sent events while the job runs. A stream
  // lasts the server's request limit, then EventSource reconnects by itself
  // from the last line's id; if streaming fails, polling takes over again.
  function followLogs() {
    const source = new EventSource(`${path}/logs/stream?offset=${state.offset}`);
    state.stream = source;
    source.onmessage = (e) => {
      state.logText += `${e.data}\n`;
      state.offset = Number(e.lastEventId) || state.offset;
      renderLogs();
    };
    const end = () => {
      source.close();
      if (state.stream === source) state.stream = null;
    };
    source.addEventListener("done", end);
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) end();
    };
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (state.stopped) return;
    let active = false;
    try {
      const { job, refresh_error } = await get(path);
      if (state.stopped) return;
      active = ACTIVE.has(job.status);
      const key = JSON.stringify([job.status, job.progress, job.cost_usd, job.output_url, job.loss_history?.length]);
      if (key !== state.key) {
        state.key = key;
        render(job);
        renderOutputs(job);
      }
      if (refresh_error) alertBox(`Replicate could not be asked for news: ${refresh_error}`, "warn");
      if (!state.stream) {
        const l = await get(`${path}/logs?offset=${state.offset}`);
        if (l.offset !== state.offset) state.logText = "";
        if (l.logs) {
          state.logText += l.logs;
          renderLogs();
        } else if (!state.logText) {
          renderLogs();
        }
        state.offset = l.next_offset;
        if (active && !state.stopped) followLogs();
      }
    } catch (e) {
      alertBox(e.message);
      if (e.status === 404) return;
    }
    state.timer = setTimeout(refresh, active ? 2000 : 15000);
  }

  await refresh();
  return {
    el: root,
    stop: () => {
      state.stopped = true;
      clearTimeout(state.timer);
      state.stream?.close();
    },
  };
}
