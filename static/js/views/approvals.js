// Approvals: submits an approval rule held. Approvers (leads, admins) see the
// pending ones with who, the estimate, the rule and the reason, and approve or
// reject them with a reason; everyone sees their own at #/approvals/mine.
import { get, post } from "../api.js";
import { h, alertBox, clearAlerts, field, ago, money, statusBadge, toast } from "../ui.js";
import { session } from "../session.js";

const ME = "/api/approvals/me";
const LIST = "/api/approvals/requests";
const act = (id, action) => `/api/approvals/requests/${encodeURIComponent(id)}/${action}`;

export function mayApprove() {
  return (session.me?.permissions || []).includes("admin.approve");
}

function outcome(r) {
  if (r.status === "pending") return `expires ${ago(r.expires_at)}`;
  if (r.status === "approved") {
    if (r.job_id) return h("a", { href: `#/job/${encodeURIComponent(r.job_id)}` }, "job");
    return r.dispatch?.error ? `submit failed: ${r.dispatch.error}` : "";
  }
  return r.review_notes || "";
}

function row(r, actions) {
  return h(
    "tr",
    { "data-approval": String(r.id) },
    h("td", { class: "mono" }, String(r.id)),
    h("td", {}, r.username),
    h("td", {}, money(r.estimated_cost)),
    h("td", {}, r.hardware_type || ""),
    h("td", {}, r.rule_name),
    h("td", { class: "small" }, r.reason),
    h("td", { title: r.requested_at }, ago(r.requested_at)),
    h("td", {}, statusBadge(r.status)),
    h("td", { class: "small" }, actions ? actions(r) : outcome(r)),
  );
}

function table(label, rows) {
  const head = ["#", "Submitter", "Estimate", "Hardware", "Rule", "Reason", "Requested", "Status", ""];
  return h(
    "table",
    { "aria-label": label },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        head.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

export async function approvalsView(arg) {
  const mine = arg === "mine" || !mayApprove();
  const list = h("div");
  const [reasonField, reason] = field(
    "Reason or note",
    h("input", { type: "text", maxlength: "1000" }),
    "Sent with your decision; a rejection needs one, and the submitter sees it.",
  );

  async function decide(r, action, button) {
    clearAlerts();
    const text = reason.value.trim();
    if (action === "reject" && !text) {
      alertBox("Say why you reject it (the submitter sees the reason).");
      reason.focus();
      return;
    }
    button.disabled = true;
    try {
      const body = action === "reject" ? { reason: text } : text ? { notes: text } : {};
      const out = await post(act(r.id, action), body);
      if (action === "approve" && !out.dispatched) alertBox(out.message, "warn");
      else toast(action === "approve" ? `Approved: ${out.message}` : `Request ${r.id} rejected.`);
      reason.value = "";
      await load();
    } catch (e) {
      alertBox(`Could not ${action} request ${r.id}: ${e.message}`);
      await load();
    }
  }

  const buttons = (r) =>
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", onclick: (ev) => decide(r, "approve", ev.currentTarget) }, "Approve"),
      h(
        "button",
        { type: "button", class: "secondary", onclick: (ev) => decide(r, "reject", ev.currentTarget) },
        "Reject",
      ),
    );

  async function load() {
    try {
      if (mine) {
        const r = await get(ME);
        list.replaceChildren(
          r.requests.length
            ? table(
                "Your approval requests",
                r.requests.map((x) => row(x)),
              )
            : h("p", { class: "muted" }, "You have no approval requests."),
        );
        return;
      }
      const [pending, recent] = await Promise.all([get(`${LIST}?status=pending&limit=200`), get(`${LIST}?limit=20`)]);
      const decided = recent.requests.filter((x) => x.status !== "pending");
      list.replaceChildren(
        h("h2", {}, `Pending (${pending.requests.length})`),
        pending.requests.length
          ? table(
              "Pending approval requests",
              pending.requests.map((x) => row(x, buttons)),
            )
          : h("p", { class: "muted" }, "Nothing waits for a decision."),
        h("h2", {}, "Recent decisions"),
        decided.length
          ? table(
              "Recent decisions",
              decided.map((x) => row(x)),
            )
          : h("p", { class: "muted" }, "None yet."),
      );
    } catch (e) {
      alertBox(`Could not read the approval requests: ${e.message}`);
    }
  }

  await load();
  const el = h(
    "section",
    { class: "panel" },
    h("h1", {}, mine ? "Your approval requests" : "Approvals"),
    h(
      "p",
      { class: "muted" },
      mine
        ? "Submits an approval rule held: nothing runs (or costs) until a lead or an admin approves."
        : "Submits held by approval rules. Approving runs the job as its submitter; rejecting ends it with your reason.",
    ),
    mine ? null : reasonField,
    list,
  );
  return { el };
}
