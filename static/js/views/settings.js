// Settings: Replicate token (write-only) and validation, public URL, spending
// limit with the current spend, hardware prices, and API keys.
import { get, put, paths } from "../api.js";
import { h, field, alertBox, clearAlerts, toast, money } from "../ui.js";
import { session } from "../session.js";
import { tokenSetup } from "../panels/token.js";
import { apiKeysPanel } from "../panels/api-keys.js";

function spendBar(s) {
  const pct = Math.min(100, s.percent_used || 0);
  const fill = h("span");
  fill.style.width = `${pct}%`;
  return h(
    "div",
    {},
    h(
      "div",
      {
        class: `spend ${s.is_exceeded ? "over" : s.is_warning ? "warn" : ""}`,
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": Math.round(pct),
        "aria-label": "Spend against the limit",
      },
      fill,
    ),
    h(
      "p",
      { class: "small" },
      s.enabled
        ? `${money(s.current_spend)} of ${money(s.limit_amount)} this ${s.period.replace(/ly$/, "").replace("dai", "day")} (${Math.round(s.percent_used || 0)} %). ${s.message || ""}`
        : `No limit set. Spent ${money(s.current_spend)} this period.`,
    ),
  );
}

function costLimitForm(config, status) {
  const enabled = h("input", { type: "checkbox", checked: !!config.cost_limit_enabled });
  const [amountField, amount] = field(
    "Limit (USD)",
    h("input", { type: "number", min: "0", step: "0.01", value: config.cost_limit_amount ?? 50 }),
  );
  const [periodField, period] = field(
    "Period",
    h(
      "select",
      {},
      ["daily", "weekly", "monthly"].map((p) => h("option", { value: p, selected: config.cost_limit_period === p }, p)),
    ),
  );
  const [actionField, action] = field(
    "When reached",
    h(
      "select",
      {},
      h("option", { value: "warn", selected: config.cost_limit_action === "warn" }, "Warn only"),
      h("option", { value: "block", selected: config.cost_limit_action === "block" }, "Block new jobs"),
    ),
  );
  const bar = h("div", {}, spendBar(status));
  const save = h("button", { type: "submit" }, "Save limit");
  return h(
    "form",
    {
      class: "panel",
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearAlerts();
        save.disabled = true;
        try {
          await put(paths.provider, {
            cost_limit_enabled: enabled.checked,
            cost_limit_amount: Number(amount.value),
            cost_limit_period: period.value,
            cost_limit_action: action.value,
          });
          bar.replaceChildren(spendBar(await get(paths.costLimit)));
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
    h("div", { class: "grid2" }, amountField, periodField),
    actionField,
    h("h3", {}, "Current spend"),
    bar,
    h("div", { class: "row end" }, save),
  );
}

function publicUrlForm(config) {
  const [urlField, url] = field(
    "Public URL of this server",
    h("input", { type: "url", value: config.public_url || "", placeholder: "https://my-tunnel.example.com" }),
  );
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
  return h(
    "form",
    {
      class: "panel",
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await put(paths.provider, { public_url: url.value.trim() || null });
          toast("Public URL saved");
        } catch (e) {
          alertBox(`Public URL not saved: ${e.message}`);
        }
      },
    },
    h("h2", {}, "Webhooks and downloads"),
    urlField,
    hint,
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Save URL")),
  );
}

function hardwareTable(providers) {
  const p = providers[0];
  return h(
    "div",
    { class: "panel" },
    h("h2", {}, "Hardware and prices"),
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Profile"),
          h("th", { scope: "col" }, "GPUs"),
          h("th", { scope: "col" }, "Memory"),
          h("th", { scope: "col" }, "$/hour"),
        ),
      ),
      h(
        "tbody",
        {},
        p.hardware_profiles.map((hw) =>
          h(
            "tr",
            {},
            h("td", {}, hw.label, hw.id === p.hardware_profile ? " (default)" : ""),
            h("td", {}, `${hw.gpu_count}× ${hw.gpu}`),
            h("td", {}, `${hw.memory_gb} GB`),
            h("td", {}, `$${hw.cost_per_hour.toFixed(2)}`),
          ),
        ),
      ),
    ),
  );
}

export async function settingsView() {
  const [{ providers }, costStatus] = await Promise.all([get(paths.providers), get(paths.costLimit)]);
  const root = h("section", {}, h("h1", {}, "Settings"));
  if (session.me.is_admin) {
    const { config } = await get(paths.provider);
    const t = config.api_token;
    const status = t.configured
      ? `A token is configured (${t.source === "variable" ? "from the replicate_api_token variable" : `ending in …${t.last4}`}). Paste a new one to replace it.`
      : "No token yet: jobs cannot run until you add one.";
    root.append(tokenSetup(null, false, status), publicUrlForm(config), costLimitForm(config, costStatus));
  } else {
    root.append(
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Replicate"),
        h(
          "p",
          {},
          providers[0].configured
            ? "Replicate is configured by an administrator."
            : "Replicate is not configured yet: ask an administrator.",
        ),
      ),
      h("div", { class: "panel" }, h("h2", {}, "Spending"), spendBar(costStatus)),
    );
  }
  root.append(hardwareTable(providers), apiKeysPanel());
  return { el: root };
}
