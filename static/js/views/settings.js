// Settings: Replicate token (write-only) and validation, public URL, spending
// limit with the current spend, hardware prices, and API keys.
import { get, put, post, del } from "../api.js";
import { h, field, alertBox, clearAlerts, confirmDialog, copyButton, toast, money } from "../ui.js";
import { session } from "../app.js";

const PROVIDER = "/api/cloud/providers/replicate";

/** Validates the token and says which account it belongs to. */
async function validate(out) {
  out.className = "muted";
  out.textContent = "Checking with Replicate…";
  try {
    const v = await get(`${PROVIDER}/validate`);
    if (v.valid) {
      out.className = "ok-text";
      out.textContent = `Connected as ${v.user_info?.username || v.user_info?.name || "your Replicate account"}.`;
    } else {
      out.className = "field-error";
      out.textContent = `Replicate refused the token: ${v.error || "unknown reason"}`;
    }
  } catch (e) {
    out.className = "field-error";
    out.textContent = `Could not validate: ${e.message}`;
  }
}

/** Token entry (write-only) + Validate; also the guided setup on the Cloud tab. */
export function tokenSetup(onSaved, guided = false, status = null) {
  const [tokenField, token] = field("Replicate API token", h("input", {
    type: "password", autocomplete: "off", placeholder: "r8_…", spellcheck: "false",
  }), "Stored on this server and never shown again. Find it at replicate.com/account/api-tokens.");
  const out = h("p", { "aria-live": "polite" });
  const save = h("button", { type: "submit" }, "Save & validate");
  return h("form", {
    class: "panel",
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearAlerts();
      if (!token.value.trim()) { out.className = "field-error"; out.textContent = "Paste a token first."; token.focus(); return; }
      save.disabled = true;
      try {
        await put(PROVIDER, { api_token: token.value.trim() });
        token.value = "";
        toast("Token saved");
        await validate(out);
        if (onSaved && out.className === "ok-text") setTimeout(onSaved, 800);
      } catch (e) {
        out.className = "field-error";
        out.textContent = `Not saved: ${e.message}`;
      } finally {
        save.disabled = false;
      }
    },
  },
  h("h2", {}, guided ? "Get started with Replicate" : "Replicate API token"),
  guided && h("ol", {},
    h("li", {}, "Open ", h("a", { href: "https://replicate.com/account/api-tokens", rel: "noopener", target: "_blank" }, "your Replicate API tokens"), " and create one."),
    h("li", {}, "Paste it here. Jobs run on Replicate's GPUs (L40S or H100), billed per second to your account.")),
  status && h("p", { class: "muted" }, status),
  tokenField,
  h("div", { class: "row" }, save,
    !guided && h("button", { type: "button", class: "secondary", onclick: () => validate(out) }, "Validate")),
  out);
}

function spendBar(s) {
  const pct = Math.min(100, s.percent_used || 0);
  const fill = h("span");
  fill.style.width = `${pct}%`;
  return h("div", {},
    h("div", {
      class: `spend ${s.is_exceeded ? "over" : s.is_warning ? "warn" : ""}`, role: "progressbar",
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(pct), "aria-label": "Spend against the limit",
    }, fill),
    h("p", { class: "small" }, s.enabled
      ? `${money(s.current_spend)} of ${money(s.limit_amount)} this ${s.period.replace(/ly$/, "").replace("dai", "day")} (${Math.round(s.percent_used || 0)} %). ${s.message || ""}`
      : `No limit set. Spent ${money(s.current_spend)} this period.`));
}

function costLimitForm(config, status) {
  const enabled = h("input", { type: "checkbox", checked: !!config.cost_limit_enabled });
  const [amountField, amount] = field("Limit (USD)", h("input", { type: "number", min: "0", step: "0.01", value: config.cost_limit_amount ?? 50 }));
  const [periodField, period] = field("Period", h("select", {},
    ["daily", "weekly", "monthly"].map((p) => h("option", { value: p, selected: config.cost_limit_period === p }, p))));
  const [actionField, action] = field("When reached", h("select", {},
    h("option", { value: "warn", selected: config.cost_limit_action === "warn" }, "Warn only"),
    h("option", { value: "block", selected: config.cost_limit_action === "block" }, "Block new jobs")));
  const bar = h("div", {}, spendBar(status));
  const save = h("button", { type: "submit" }, "Save limit");
  return h("form", {
    class: "panel",
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearAlerts();
      save.disabled = true;
      try {
        await put(PROVIDER, {
          cost_limit_enabled: enabled.checked, cost_limit_amount: Number(amount.value),
          cost_limit_period: period.value, cost_limit_action: action.value,
        });
        bar.replaceChildren(spendBar(await get("/api/cloud/metrics/cost-limit")));
        toast("Spending limit saved");
      } catch (e) {
        alertBox(`Spending limit not saved: ${e.message}`);
      } finally {
        save.disabled = false;
      }
    },
  },
  h("h2", {}, "Spending limit"),
  h("label", { class: "inline" }, enabled, "Enable a spending limit"),
  h("div", { class: "grid2" }, amountField, periodField), actionField,
  h("h3", {}, "Current spend"), bar,
  h("div", { class: "row end" }, save));
}

function publicUrlForm(config) {
  const [urlField, url] = field("Public URL of this server", h("input", { type: "url", value: config.public_url || "", placeholder: "https://my-tunnel.example.com" }));
  const hint = h("p", { class: "hint", "aria-live": "polite" });
  const check = () => {
    const v = url.value.trim();
    hint.textContent = !v
      ? "Empty: Replicate cannot call back, so status comes from polling (Sync) and models cannot be downloaded to this machine."
      : /^https?:\/\/(localhost|127\.|0\.0\.0\.0|10\.|192\.168\.)/.test(v)
        ? "This address is private: Replicate cannot reach it. Use a tunnel (cloudflared, ngrok) or your deployed URL."
        : `Replicate will POST status to ${v.replace(/\/$/, "")}/api/cloud/webhooks/replicate and trainers upload to ${v.replace(/\/$/, "")}/api/cloud/storage.`;
  };
  url.addEventListener("input", check);
  check();
  return h("form", {
    class: "panel",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await put(PROVIDER, { public_url: url.value.trim() || null });
        toast("Public URL saved");
      } catch (e) { alertBox(`Public URL not saved: ${e.message}`); }
    },
  }, h("h2", {}, "Webhooks and downloads"), urlField, hint, h("div", { class: "row end" }, h("button", { type: "submit" }, "Save URL")));
}

function hardwareTable(providers) {
  const p = providers[0];
  return h("div", { class: "panel" }, h("h2", {}, "Hardware and prices"),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Profile"), h("th", { scope: "col" }, "GPUs"), h("th", { scope: "col" }, "Memory"), h("th", { scope: "col" }, "$/hour"))),
      h("tbody", {}, p.hardware_profiles.map((hw) => h("tr", {},
        h("td", {}, hw.label, hw.id === p.hardware_profile ? " (default)" : ""),
        h("td", {}, `${hw.gpu_count}× ${hw.gpu}`), h("td", {}, `${hw.memory_gb} GB`), h("td", {}, `$${hw.cost_per_hour.toFixed(2)}`))))));
}

const SCOPES = [
  ["job.submit", "Submit jobs"], ["job.view.own", "See own jobs"], ["job.cancel.own", "Cancel own jobs"],
  ["job.delete.own", "Delete own jobs"], ["config.view", "Read configs"],
];

function apiKeys() {
  const list = h("tbody");
  const shown = h("div", { "aria-live": "polite" });
  const [nameField, name] = field("Name", h("input", { type: "text", required: true, placeholder: "github-actions" }));
  const [daysField, days] = field("Expires after (days)", h("input", { type: "number", min: "1", max: "365", value: "90" }));
  const scopeBoxes = SCOPES.map(([id, label]) => [id, h("input", { type: "checkbox", value: id, checked: id === "job.submit" || id === "job.view.own" }), label]);
  const scopes = h("fieldset", {}, h("legend", {}, "Scopes (leave all unchecked for your full role)"),
    scopeBoxes.map(([, box, label]) => h("label", { class: "inline" }, box, label, " ")));

  async function load() {
    try {
      const { api_keys } = await get("/api/cloud/auth/api-keys");
      list.replaceChildren(...(api_keys.length ? api_keys.map((k) => h("tr", {},
        h("td", {}, k.name), h("td", { class: "mono" }, `${k.key_prefix}…`),
        h("td", {}, (k.scoped_permissions || []).join(", ") || "full role"),
        h("td", {}, k.revoked ? "revoked" : k.is_active ? `until ${new Date(k.expires_at).toLocaleDateString()}` : "expired"),
        h("td", {}, !k.revoked && h("button", {
          type: "button", class: "secondary small", "aria-label": `Revoke key ${k.name}`,
          onclick: async () => {
            if (!await confirmDialog("Revoke this key?", `Anything using "${k.name}" stops working at once.`, "Revoke")) return;
            try { await del(`/api/cloud/auth/api-keys/${encodeURIComponent(k.id)}`); toast("Key revoked"); load(); }
            catch (e) { alertBox(`Could not revoke: ${e.message}`); }
          },
        }, "Revoke")))) : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No API keys yet."))]));
    } catch (e) { alertBox(`Could not list API keys: ${e.message}`); }
  }

  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearAlerts();
      const picked = scopeBoxes.filter(([, b]) => b.checked).map(([id]) => id);
      try {
        const r = await post("/api/cloud/auth/api-keys", {
          name: name.value.trim(), expires_days: Number(days.value), scoped_permissions: picked.length ? picked : null,
        });
        const keyEl = h("code", { class: "mono", "data-new-key": "" }, r.key);
        shown.replaceChildren(h("div", { class: "keyonce" },
          h("p", {}, h("strong", {}, "Copy this key now: it is shown only once.")),
          h("div", { class: "row" }, keyEl, copyButton(() => r.key, "Copy key"))));
        name.value = "";
        load();
      } catch (e) { alertBox(`Key not created: ${e.message}`); }
    },
  }, h("div", { class: "grid2" }, nameField, daysField), scopes, h("div", { class: "row end" }, h("button", { type: "submit" }, "Create key")));
  load();
  return h("div", { class: "panel" }, h("h2", {}, "API keys"),
    h("p", { class: "muted" }, "For CI and scripts: send as ", h("code", {}, "Authorization: Bearer stk_…"), "."),
    form, shown,
    h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Key", "Scopes", "Status", ""].map((t) => h("th", { scope: "col" }, t)))), list));
}

export async function settingsView() {
  const [{ providers }, costStatus] = await Promise.all([get("/api/cloud/providers"), get("/api/cloud/metrics/cost-limit")]);
  const root = h("section", {}, h("h1", {}, "Settings"));
  if (session.me.is_admin) {
    const { config } = await get(PROVIDER);
    const t = config.api_token;
    const status = t.configured
      ? `A token is configured (${t.source === "variable" ? "from the replicate_api_token variable" : `ending in …${t.last4}`}). Paste a new one to replace it.`
      : "No token yet: jobs cannot run until you add one.";
    root.append(tokenSetup(null, false, status), publicUrlForm(config), costLimitForm(config, costStatus));
  } else {
    root.append(h("div", { class: "panel" }, h("h2", {}, "Replicate"),
      h("p", {}, providers[0].configured ? "Replicate is configured by an administrator." : "Replicate is not configured yet: ask an administrator.")),
    h("div", { class: "panel" }, h("h2", {}, "Spending"), spendBar(costStatus)));
  }
  root.append(hardwareTable(providers), apiKeys());
  return { el: root };
}
