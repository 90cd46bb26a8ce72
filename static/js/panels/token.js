// The Replicate token panel: write-only entry and validation. Settings shows
// it; the Cloud tab shows it as the guided first setup.
import { get, put, paths } from "../api.js";
import { h, field, clearAlerts, toast } from "../ui.js";

/** Validates the token and says which account it belongs to. */
async function validate(out) {
  out.className = "muted";
  out.textContent = "Checking with Replicate…";
  try {
    const v = await get(paths.providerValidate);
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
  const [tokenField, token] = field(
    "Replicate API token",
    h("input", {
      type: "password",
      autocomplete: "off",
      placeholder: "r8_…",
      spellcheck: "false",
    }),
    "Stored on this server and never shown again. Find it at replicate.com/account/api-tokens.",
  );
  const out = h("p", { "aria-live": "polite" });
  const save = h("button", { type: "submit" }, "Save & validate");
  return h(
    "form",
    {
      class: "panel",
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearAlerts();
        if (!token.value.trim()) {
          out.className = "field-error";
          out.textContent = "Paste a token first.";
          token.focus();
          return;
        }
        save.disabled = true;
        try {
          await put(paths.provider, { api_token: token.value.trim() });
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
    guided &&
      h(
        "ol",
        {},
        h(
          "li",
          {},
          "Open ",
          h(
            "a",
            { href: "https://replicate.com/account/api-tokens", rel: "noopener", target: "_blank" },
            "your Replicate API tokens",
          ),
          " and create one.",
        ),
        h("li", {}, "Paste it here. Jobs run on Replicate's GPUs (L40S or H100), billed per second to your account."),
      ),
    status && h("p", { class: "muted" }, status),
    tokenField,
    h(
      "div",
      { class: "row" },
      save,
      !guided && h("button", { type: "button", class: "secondary", onclick: () => validate(out) }, "Validate"),
    ),
    out,
  );
}
