// The API keys panel: create (shown once, with scopes and expiry), list, revoke.
import { get, post, del, paths } from "../api.js";
import { h, field, alertBox, clearAlerts, confirmDialog, copyButton, toast } from "../ui.js";

const SCOPES = [
  ["job.submit", "Submit jobs"],
  ["job.view.own", "See own jobs"],
  ["job.cancel.own", "Cancel own jobs"],
  ["job.delete.own", "Delete own jobs"],
  ["config.view", "Read configs"],
];

export function apiKeysPanel() {
  const list = h("tbody");
  const shown = h("div", { "aria-live": "polite" });
  const [nameField, name] = field("Name", h("input", { type: "text", required: true, placeholder: "github-actions" }));
  const [daysField, days] = field(
    "Expires after (days)",
    h("input", { type: "number", min: "1", max: "365", value: "90" }),
  );
  const scopeBoxes = SCOPES.map(([id, label]) => [
    id,
    h("input", { type: "checkbox", value: id, checked: id === "job.submit" || id === "job.view.own" }),
    label,
  ]);
  const scopes = h(
    "fieldset",
    {},
    h("legend", {}, "Scopes (leave all unchecked for your full role)"),
    scopeBoxes.map(([, box, label]) => h("label", { class: "inline" }, box, label, " ")),
  );

  async function load() {
    try {
      const { api_keys } = await get(paths.apiKeys);
      list.replaceChildren(
        ...(api_keys.length
          ? api_keys.map((k) =>
              h(
                "tr",
                {},
                h("td", {}, k.name),
                h("td", { class: "mono" }, `${k.key_prefix}…`),
                h("td", {}, (k.scoped_permissions || []).join(", ") || "full role"),
                h(
                  "td",
                  {},
                  k.revoked
                    ? "revoked"
                    : k.is_active
                      ? `until ${new Date(k.expires_at).toLocaleDateString()}`
                      : "expired",
                ),
                h(
                  "td",
                  {},
                  !k.revoked &&
                    h(
                      "button",
                      {
                        type: "button",
                        class: "secondary small",
                        "aria-label": `Revoke key ${k.name}`,
                        onclick: async () => {
                          if (
                            !(await confirmDialog(
                              "Revoke this key?",
                              `Anything using "${k.name}" stops working at once.`,
                              "Revoke",
                            ))
                          )
                            return;
                          try {
                            await del(paths.apiKey(k.id));
                            toast("Key revoked");
                            load();
                          } catch (e) {
                            alertBox(`Could not revoke: ${e.message}`);
                          }
                        },
                      },
                      "Revoke",
                    ),
                ),
              ),
            )
          : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No API keys yet."))]),
      );
    } catch (e) {
      alertBox(`Could not list API keys: ${e.message}`);
    }
  }

  const form = h(
    "form",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearAlerts();
        const picked = scopeBoxes.filter(([, b]) => b.checked).map(([id]) => id);
        try {
          const r = await post(paths.apiKeys, {
            name: name.value.trim(),
            expires_days: Number(days.value),
            scoped_permissions: picked.length ? picked : null,
          });
          const keyEl = h("code", { class: "mono", "data-new-key": "" }, r.key);
          shown.replaceChildren(
            h(
              "div",
              { class: "keyonce" },
              h("p", {}, h("strong", {}, "Copy this key now: it is shown only once.")),
              h(
                "div",
                { class: "row" },
                keyEl,
                copyButton(() => r.key, "Copy key"),
              ),
            ),
          );
          name.value = "";
          load();
        } catch (e) {
          alertBox(`Key not created: ${e.message}`);
        }
      },
    },
    h("div", { class: "grid2" }, nameField, daysField),
    scopes,
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Create key")),
  );
  load();
  return h(
    "div",
    { class: "panel" },
    h("h2", {}, "API keys"),
    h("p", { class: "muted" }, "For CI and scripts: send as ", h("code", {}, "Authorization: Bearer stk_…"), "."),
    form,
    shown,
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Key", "Scopes", "Status", ""].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      list,
    ),
  );
}
