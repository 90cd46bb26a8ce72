// Small DOM helpers. User data only ever goes in through textContent or
// attributes, never innerHTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

let fieldIds = 0;
/** A labelled form field; returns [wrapper, control]. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return [h("div", {}, h("label", { for: id }, label), control, hintEl), control];
}

/** Shows an error (or warning/info) in words at the top of the page. */
export function alertBox(message, kind = "error") {
  const box = h(
    "div",
    { class: `alert ${kind === "error" ? "" : kind}` },
    h("span", {}, message),
    h("button", { type: "button", class: "link", onclick: () => box.remove() }, "Dismiss"),
  );
  document.getElementById("alerts").append(box);
  return box;
}
export function clearAlerts() {
  document.getElementById("alerts").replaceChildren();
}

export function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.classList.add("show");
  clearTimeout(t._timer);
  t._timer = setTimeout(() => t.classList.remove("show"), 2500);
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(title, text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

export function copyButton(getText, label = "Copy") {
  return h(
    "button",
    {
      type: "button",
      class: "secondary small",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(getText());
          toast("Copied");
        } catch {
          toast("Copy failed: select the text and copy it");
        }
      },
    },
    label,
  );
}

export const money = (x) => (x === null || x === undefined ? "—" : `$${Number(x).toFixed(2)}`);

export function ago(iso) {
  if (!iso) return "—";
  const secs = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (secs < 60) return `${Math.floor(secs)}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return `${Math.floor(secs / 86400)}d ago`;
}

export function duration(secs) {
  if (secs === null || secs === undefined) return "—";
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, status);
}

/** A progress bar with an accessible value; `setProgress` moves it. */
export function progressBar(percent, label) {
  const bar = h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": label },
    h("span"),
  );
  setProgress(bar, percent);
  return bar;
}

export function setProgress(bar, percent) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  // CSSOM, not a style attribute: the CSP allows no inline styles.
  bar.firstChild.style.width = `${p}%`;
  bar.setAttribute("aria-valuenow", String(Math.round(p)));
}

/**
 * Tabs with the ARIA tab pattern (arrow keys move between tabs).
 * `items` are [{id, label, panel}]; returns the element.
 */
export function tabs(items, label) {
  const buttons = items.map((it, i) =>
    h(
      "button",
      {
        type: "button",
        role: "tab",
        class: "tab",
        id: `tab-${it.id}`,
        "aria-controls": `panel-${it.id}`,
        "aria-selected": i === 0 ? "true" : "false",
        tabindex: i === 0 ? "0" : "-1",
      },
      it.label,
    ),
  );
  const panels = items.map((it, i) =>
    h(
      "section",
      { role: "tabpanel", id: `panel-${it.id}`, "aria-labelledby": `tab-${it.id}`, hidden: i !== 0 },
      it.panel,
    ),
  );
  const select = (i) => {
    buttons.forEach((b, j) => {
      b.setAttribute("aria-selected", j === i ? "true" : "false");
      b.tabIndex = j === i ? 0 : -1;
      panels[j].hidden = j !== i;
    });
  };
  buttons.forEach((b, i) => {
    b.addEventListener("click", () => select(i));
    b.addEventListener("keydown", (e) => {
      const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!d) return;
      const j = (i + d + buttons.length) % buttons.length;
      select(j);
      buttons[j].focus();
    });
  });
  return h(
    "div",
    { class: "tabset" },
    h("div", { class: "tabs", role: "tablist", "aria-label": label }, buttons),
    panels,
  );
}
