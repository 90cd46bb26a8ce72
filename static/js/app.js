// cloudtuner web UI: a hash router over views that use only the public REST API.
import { get, post, paths, whenUnauthorized } from "./api.js";
import { session } from "./session.js";
import { clearAlerts, alertBox } from "./ui.js";
import { setupView, loginView } from "./views/auth.js";
import { jobsView } from "./views/jobs.js";
import { jobView } from "./views/job.js";
import { trainView } from "./views/train.js";
import { settingsView } from "./views/settings.js";
import { eventsView } from "./views/events.js";
import { approvalsView, mayApprove } from "./views/approvals.js";

let stopCurrent = () => {};
let navigated = false;

whenUnauthorized(() => {
  session.me = null;
  if (!location.hash.startsWith("#/login") && !location.hash.startsWith("#/setup")) {
    location.hash = "#/login";
  }
});

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  for (const a of document.querySelectorAll("[data-admin]")) a.hidden = !(signedIn && session.me?.role === "admin");
  // Approvals: for those who may decide (leads and admins: admin.approve).
  for (const a of document.querySelectorAll("[data-approver]")) a.hidden = !(signedIn && mayApprove());
  document.getElementById("who-name").textContent = signedIn ? `${session.me.username} (${session.me.role})` : "";
}

function markNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  stopCurrent();
  stopCurrent = () => {};
  clearAlerts();
  const view = document.getElementById("view");
  const hash = location.hash || "#/jobs";
  const [, name = "jobs", arg] = hash.split("/");
  try {
    if (name === "setup" || name === "login") {
      showChrome(false);
      markNav("");
      const setup = await get(paths.setup, { quiet401: true });
      if (setup.needs_setup && name !== "setup") {
        location.hash = "#/setup";
        return;
      }
      if (!setup.needs_setup && name === "setup") {
        location.hash = "#/login";
        return;
      }
      view.replaceChildren(name === "setup" ? setupView(onSignedIn) : loginView(onSignedIn));
      navigated = true;
      return;
    }
    if (!session.me) {
      try {
        session.me = await get(paths.me, { quiet401: true });
      } catch (e) {
        if (e.status === 401) {
          const setup = await get(paths.setup, { quiet401: true });
          location.hash = setup.needs_setup ? "#/setup" : "#/login";
          return;
        }
        throw e;
      }
    }
    showChrome(true);
    markNav(name === "job" ? "jobs" : name);
    const views = {
      jobs: jobsView,
      job: jobView,
      train: trainView,
      settings: settingsView,
      events: eventsView,
      approvals: approvalsView,
    };
    const make = views[name] || jobsView;
    const { el, stop } = await make(arg ? decodeURIComponent(arg) : undefined);
    view.replaceChildren(el);
    stopCurrent = stop || (() => {});
    // After an in-app navigation, move focus to the new view's heading so screen readers
    // announce it; on a fresh page load leave it at the document start (skip link first).
    const heading = view.querySelector("h1");
    if (heading && navigated) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    navigated = true;
  } catch (e) {
    alertBox(e.message);
  }
}

function onSignedIn(me) {
  session.me = me;
  location.hash = "#/jobs";
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await post(paths.logout);
  } catch {
    /* signed out either way */
  }
  session.me = null;
  location.hash = "#/login";
});

// The skip link must not touch the hash: "#view" would be read as a route.
document.querySelector("a.skip").addEventListener("click", (e) => {
  e.preventDefault();
  const view = document.getElementById("view");
  const target = view.querySelector("h1") || view;
  target.tabIndex = -1;
  target.focus();
});

window.addEventListener("hashchange", route);
route();
