// First-run admin setup and sign-in.
import { get, post, paths } from "../api.js";
import { h, field, alertBox, clearAlerts } from "../ui.js";

function credentialsForm({ title, intro, submitLabel, withRemember, onSubmit }) {
  const [userField, user] = field(
    "Username",
    h("input", { type: "text", name: "username", autocomplete: "username", required: true }),
  );
  const [passField, pass] = field(
    "Password",
    h("input", {
      type: "password",
      name: "password",
      required: true,
      autocomplete: withRemember ? "current-password" : "new-password",
    }),
    withRemember ? null : "At least 12 characters.",
  );
  const remember = h("input", { type: "checkbox", name: "remember" });
  const button = h("button", { type: "submit" }, submitLabel);
  const form = h(
    "form",
    {
      class: "panel auth",
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearAlerts();
        button.disabled = true;
        try {
          await onSubmit(user.value.trim(), pass.value, remember.checked);
        } catch (e) {
          alertBox(e.message);
          pass.focus();
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", {}, title),
    intro && h("p", { class: "muted" }, intro),
    userField,
    passField,
    withRemember && h("p", {}, h("label", { class: "inline" }, remember, "Keep me signed in for 30 days")),
    h("div", { class: "row end" }, button),
  );
  setTimeout(() => user.focus(), 0);
  return form;
}

export function setupView(done) {
  return credentialsForm({
    title: "Create the first admin",
    intro: "This installation has no users yet. The account you create now administers it.",
    submitLabel: "Create admin",
    withRemember: false,
    onSubmit: async (username, password) => {
      await post(paths.setup, { username, password });
      done(await get(paths.me));
    },
  });
}

export function loginView(done) {
  return credentialsForm({
    title: "Sign in",
    submitLabel: "Sign in",
    withRemember: true,
    onSubmit: async (username, password, remember_me) => {
      await post(paths.login, { username, password, remember_me }, { quiet401: true });
      done(await get(paths.me));
    },
  });
}
