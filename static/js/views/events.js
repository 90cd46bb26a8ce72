// Events (admins): who did what, newest first, filtered by type, actor or
// target, a page at a time, and a check of the log's hash chain.
import { get, paths } from "../api.js";
import { h, alertBox, field, ago } from "../ui.js";

const TYPES = ["", "auth", "api_key", "user", "job", "settings", "webhook", "permission"];

function detailText(d) {
  if (!d || typeof d !== "object") return "";
  return Object.entries(d)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

export async function eventsView() {
  const [typeField, type] = field(
    "Type",
    h(
      "select",
      {},
      TYPES.map((t) => h("option", { value: t }, t || "all")),
    ),
  );
  const [actorField, actor] = field("Actor (user id)", h("input", { type: "text" }));
  const [targetField, target] = field("Target (job, user or key id)", h("input", { type: "text" }));
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Older events");
  const chain = h("p", { class: "muted", "aria-live": "polite" });
  // Unauthenticated noise (rejected webhooks, failed sign-ins) is counted per type and hour.
  const noise = h("ul", {
    class: "small",
    "aria-label": "Unauthenticated requests, counted",
  });
  let before = null;

  async function load(reset) {
    if (reset) {
      before = null;
      rows.replaceChildren();
    }
    const q = new URLSearchParams({ limit: "50" });
    if (type.value) q.set("type", type.value);
    if (actor.value.trim()) q.set("actor", actor.value.trim());
    if (target.value.trim()) q.set("target", target.value.trim());
    if (before) q.set("before", String(before));
    try {
      const r = await get(`${paths.events}?${q}`);
      for (const e of r.events) {
        rows.append(
          h(
            "tr",
            { "data-seq": String(e.seq) },
            h("td", { title: e.at }, ago(e.at)),
            h("td", { class: "mono" }, e.type),
            h("td", { class: "mono" }, e.actor),
            h("td", { class: "mono" }, e.target || ""),
            h("td", { class: "small" }, detailText(e.detail)),
          ),
        );
      }
      if (reset) {
        noise.replaceChildren(
          ...(r.aggregates || []).map((a) =>
            h(
              "li",
              { title: `${a.from} – ${a.to}` },
              `${a.type}: ${a.count} unauthenticated, ${ago(a.from)} (hour)`,
              a.samples.length ? ` · first: ${a.samples.map((s) => s.target || detailText(s.detail)).join(", ")}` : "",
            ),
          ),
        );
      }
      if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "No events.")));
      before = r.next_before;
      more.hidden = !before;
    } catch (e) {
      alertBox(`Could not read the event log: ${e.message}`);
    }
  }

  async function verify() {
    chain.textContent = "Checking…";
    try {
      const v = await get(paths.eventsVerify);
      chain.textContent = v.valid
        ? `Chain intact: ${v.checked} entries checked (#${v.from_seq}–#${v.to_seq})` +
          (v.dropped
            ? `; ${v.dropped} older entries were dropped by retention and cannot be checked.`
            : ", the whole log.")
        : `Chain broken at ${v.problems.map((p) => `#${p.seq} (${p.problem})`).join(", ")}.`;
      chain.className = v.valid ? "ok" : "field-error";
    } catch (e) {
      chain.textContent = `Could not verify: ${e.message}`;
    }
  }

  for (const el of [type]) el.addEventListener("change", () => load(true));
  for (const el of [actor, target]) el.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  await load(true);
  const el = h(
    "section",
    {},
    h("h1", {}, "Events"),
    h(
      "div",
      { class: "panel" },
      h(
        "p",
        { class: "muted" },
        "Who did what: sign-ins, keys, users, jobs, settings, refused requests. Newest first; the log keeps its newest entries, each chained to the one before by its hash.",
      ),
      h("div", { class: "row" }, typeField, actorField, targetField),
      h(
        "table",
        { "aria-label": "Events" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["When", "Type", "Actor", "Target", "Detail"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        rows,
      ),
      noise,
      h("div", { class: "row" }, more, h("button", { type: "button", onclick: verify }, "Verify chain"), chain),
    ),
  );
  return { el, stop: () => {} };
}
