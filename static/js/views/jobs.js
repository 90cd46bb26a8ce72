// The Cloud tab: provider tabs (with guided setup when Replicate is not
// configured) and the live job list.
import { get, paths } from "../api.js";
import { h, alertBox, money, ago, duration, statusBadge, progressBar } from "../ui.js";
import { session } from "../session.js";
import { tokenSetup } from "../panels/token.js";

const PAGE = 20;
const FILTERS = ["all", "queued", "running", "completed", "failed", "cancelled"];
const ACTIVE = new Set(["pending", "uploading", "queued", "running"]);

function jobName(j) {
  return j.metadata?.tracker_run_name || j.config_name || `Job ${j.job_id.slice(0, 8)}`;
}

/** One row; rebuilt only when the job changed, so polling does not flicker. */
function jobRow(j) {
  const p = j.progress;
  const running = j.status === "running";
  const progress =
    running && p
      ? h(
          "div",
          {},
          progressBar(p.percent ?? 0, `Progress of ${jobName(j)}`),
          h(
            "div",
            { class: "meta" },
            p.step != null ? `step ${p.step}${p.total_steps ? `/${p.total_steps}` : ""}` : p.stage || "starting",
            p.loss != null ? ` · loss ${Number(p.loss).toFixed(4)}` : "",
            p.eta_seconds != null ? ` · ${duration(p.eta_seconds)} left` : "",
          ),
        )
      : h(
          "div",
          { class: "meta" },
          j.error_message
            ? `Error: ${j.error_message}`
            : j.status === "completed" && j.output_url
              ? "Output ready"
              : "",
        );
  return h(
    "li",
    { class: "job", "data-job": j.job_id },
    h(
      "div",
      {},
      h("a", { class: "name", href: `#/job/${encodeURIComponent(j.job_id)}` }, jobName(j)),
      h(
        "div",
        { class: "meta" },
        `${j.hardware_type} · ${ago(j.created_at)}${j.attempt > 1 ? ` · attempt ${j.attempt}` : ""}`,
      ),
    ),
    progress,
    h("div", {}, statusBadge(j.status)),
    h(
      "div",
      {},
      h("span", { title: j.cost_estimated ? "Estimated while running" : "Final cost" }, money(j.cost_usd)),
      h("div", { class: "meta" }, j.cost_usd == null ? "" : j.cost_estimated ? "estimated" : "final"),
    ),
  );
}

function providerTabs(providers) {
  return h(
    "div",
    { class: "tabs", role: "tablist", "aria-label": "Providers" },
    providers.map((p) =>
      h(
        "span",
        { class: "tab", role: "tab", "aria-selected": "true" },
        p.name,
        h("span", { class: `badge ${p.configured ? "ready" : "setup"}` }, p.configured ? "Ready" : "Needs setup"),
      ),
    ),
    h(
      "span",
      { class: "tab", role: "tab", "aria-selected": "false", "aria-disabled": "true" },
      "SimpleTuner.io",
      h("span", { class: "badge soon" }, "Soon"),
    ),
  );
}

export async function jobsView() {
  const state = { filter: "all", offset: 0, timer: null, rows: new Map(), stopped: false };
  const { providers } = await get(paths.providers);
  const replicate = providers[0];
  const root = h("section", {}, h("h1", {}, "Cloud training"), providerTabs(providers));
  if (!replicate.configured) {
    root.append(
      session.me.is_admin
        ? tokenSetup(() => {
            location.hash = "#/jobs";
            location.reload();
          }, true)
        : h(
            "div",
            { class: "panel" },
            h("h2", {}, "Replicate is not set up yet"),
            h("p", {}, "An administrator needs to add a Replicate API token in Settings before jobs can run."),
          ),
    );
  }
  const list = h("ul", { class: "jobs", "aria-live": "polite", "aria-busy": "true" });
  const count = h("span", { class: "muted" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const chips = FILTERS.map((f) =>
    h(
      "button",
      {
        type: "button",
        class: "chip",
        "aria-pressed": String(f === state.filter),
        onclick: () => {
          state.filter = f;
          state.offset = 0;
          for (const c of chips) c.setAttribute("aria-pressed", String(c.textContent === f));
          state.rows.clear();
          list.replaceChildren();
          refresh();
        },
      },
      f,
    ),
  );
  root.append(
    h(
      "div",
      { class: "panel" },
      h(
        "div",
        { class: "row between" },
        h("h2", {}, "Jobs ", count),
        h("a", { class: "button", href: "#/train" }, "Train in Cloud"),
      ),
      h("div", { class: "filters", role: "group", "aria-label": "Filter by status" }, chips),
      list,
      pager,
    ),
  );

  async function refresh() {
    clearTimeout(state.timer);
    if (state.stopped) return;
    let anyActive = false;
    try {
      const q = new URLSearchParams({ limit: PAGE, offset: state.offset });
      if (state.filter !== "all") q.set("status", state.filter);
      const data = await get(`${paths.jobs}?${q}`);
      if (state.stopped) return;
      count.textContent = `(${data.total})`;
      const seen = new Set();
      data.jobs.forEach((j, i) => {
        seen.add(j.job_id);
        anyActive ||= ACTIVE.has(j.status);
        const key = JSON.stringify([j.status, j.progress, j.cost_usd, j.error_message, j.output_url]);
        const prev = state.rows.get(j.job_id);
        let row = prev?.row;
        if (!prev || prev.key !== key) {
          row = jobRow(j);
          if (prev) prev.row.replaceWith(row);
          state.rows.set(j.job_id, { key, row });
        }
        if (list.children[i] !== row) list.insertBefore(row, list.children[i] || null);
      });
      for (const [id, { row }] of state.rows) {
        if (!seen.has(id)) {
          row.remove();
          state.rows.delete(id);
        }
      }
      if (!data.jobs.length) {
        list.replaceChildren(
          h(
            "li",
            { class: "empty muted" },
            state.filter === "all" ? "No jobs yet. Train in Cloud to start one." : `No ${state.filter} jobs.`,
          ),
        );
        state.rows.clear();
      } else {
        list.querySelector(".empty")?.remove();
      }
      list.setAttribute("aria-busy", "false");
      renderPager(data.total);
    } catch (e) {
      alertBox(`Could not load jobs: ${e.message}`);
    }
    // Poll faster while something is moving.
    state.timer = setTimeout(refresh, anyActive ? 2000 : 10000);
  }

  function renderPager(total) {
    const pages = Math.max(1, Math.ceil(total / PAGE));
    const page = Math.floor(state.offset / PAGE) + 1;
    const go = (delta) => () => {
      state.offset = Math.max(0, state.offset + delta * PAGE);
      state.rows.clear();
      list.replaceChildren();
      refresh();
    };
    pager.replaceChildren(
      h("button", { type: "button", class: "secondary small", disabled: page <= 1, onclick: go(-1) }, "Newer"),
      h("span", { class: "muted" }, `Page ${page} of ${pages}`),
      h("button", { type: "button", class: "secondary small", disabled: page >= pages, onclick: go(1) }, "Older"),
    );
  }

  refresh();
  return {
    el: root,
    stop: () => {
      state.stopped = true;
      clearTimeout(state.timer);
    },
  };
}
