// Renders /openapi.json as a list of operations grouped by tag. No dependencies.
"use strict";
(async function () {
  const el = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    for (const k of kids) n.append(k);
    return n;
  };
  const summary = document.getElementById("summary");
  const ops = document.getElementById("ops");
  let doc;
  try {
    const r = await fetch("/openapi.json");
    if (!r.ok) throw new Error("HTTP " + r.status);
    doc = await r.json();
  } catch (e) {
    summary.textContent = "Could not load /openapi.json: " + e.message;
    return;
  }
  summary.textContent = `${doc.info.title} ${doc.info.version} — ${doc.info.description || ""}`;
  const resolve = (s) => (s && s.$ref ? doc.components.schemas[s.$ref.split("/").pop()] : s);
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, op });
    }
  }
  for (const [tag, list] of groups) {
    ops.append(el("h2", {}, tag));
    for (const { path, method, op } of list) {
      const body = el("div", { class: "body" });
      if (op.description) body.append(el("p", {}, op.description));
      for (const p of op.parameters || []) {
        body.append(el("p", {}, el("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""}) — ${p.description || ""}`));
      }
      if (op.requestBody) {
        const c = Object.entries(op.requestBody.content || {})[0];
        body.append(el("p", { class: "muted" }, "Request body: " + (c ? c[0] : "")));
        if (c && c[1].schema) body.append(el("pre", {}, JSON.stringify(resolve(c[1].schema), null, 2)));
      }
      for (const [status, r] of Object.entries(op.responses || {})) {
        body.append(el("p", {}, el("strong", {}, status), " " + (r.description || "")));
        const c = Object.values(r.content || {})[0];
        if (c && c.schema) body.append(el("pre", {}, JSON.stringify(resolve(c.schema), null, 2)));
      }
      ops.append(el("details", {}, el("summary", {}, el("span", { class: "m " + method }, method.toUpperCase()), el("code", {}, path), " " + (op.summary || "")), body));
    }
  }
})();
