// latch admin page: polls the admin JSON API once a second and renders it.
// Plain DOM, no framework, no build step. Every fetch carries the token
// from the page's token field (kept in sessionStorage) as a Bearer token.
"use strict";

const POLL_MS = 1000;
const KEYS_LIMIT = 50;
const LIST_LIMIT = 100; // rows per page of the locks, namespaces and watches tables
const TOKEN_KEY = "latch.adminToken";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  keysNs: "",
  keysPrefix: "",
  keysAfter: "", // cursor of the page shown; "" = first page
  keysPages: [], // cursors of the pages before, for "First page"
  keysNext: "",
  confirming: "", // row id of the lock whose release awaits confirmation
  rendered: {}, // last JSON rendered per table, to skip identical redraws
  // Where each paged table is: the cursor of the page shown ("" = first),
  // the cursors of the pages before it, and the next page's cursor.
  lists: {
    locks: { after: "", before: [], next: "" },
    namespaces: { after: "", before: [], next: "" },
    watches: { after: "", before: [], next: "" },
  },
};

// listPath is the request for the page of a table that is shown now.
function listPath(id) {
  const q = new URLSearchParams({ limit: LIST_LIMIT });
  if (state.lists[id].after) q.set("after", state.lists[id].after);
  return "/admin/" + id + "?" + q;
}

// renderPager shows a table's pager only when it has more than one page.
function renderPager(id, next) {
  const p = state.lists[id];
  p.next = next || "";
  $("#" + id + "-pager").hidden = p.before.length === 0 && !p.next;
  $("#" + id + "-next").disabled = !p.next;
  $("#" + id + "-first").disabled = p.before.length === 0;
  $("#" + id + "-page").textContent = "page " + (p.before.length + 1);
}

function wirePager(id) {
  const p = state.lists[id];
  $("#" + id + "-next").addEventListener("click", () => {
    if (!p.next) return;
    p.before.push(p.after);
    p.after = p.next;
    poll();
  });
  $("#" + id + "-first").addEventListener("click", () => {
    p.before = [];
    p.after = "";
    poll();
  });
}

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, body) {
  const opts = { headers: {}, cache: "no-store" };
  if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    throw new APIError(resp.status, "bad_reply", "the server sent no JSON (HTTP " + resp.status + ")");
  }
  if (!resp.ok) throw new APIError(resp.status, data.Code, data.Message || "HTTP " + resp.status);
  return data;
}

function fmtDuration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + (d.toDateString() === new Date().toDateString() ? "" : " " + d.toLocaleDateString());
}

// fill replaces a table's rows unless the data is unchanged since the last
// draw, so buttons under the pointer are not swapped out every second.
function fill(id, items, rowOf, extraKey) {
  const json = JSON.stringify(items) + (extraKey || "");
  $("#" + id + "-empty").hidden = items.length > 0;
  if (state.rendered[id] === json) return;
  state.rendered[id] = json;
  $("#" + id + " tbody").replaceChildren(...items.map(rowOf));
}

function renderStats(st) {
  $("#version").textContent = "version " + st.Version;
  const shown = {
    UptimeMs: fmtDuration(st.UptimeMs),
    Namespaces: st.Namespaces,
    LocksHeld: st.LocksHeld,
    Waiters: st.Waiters,
    Watchers: st.Watchers,
    LastHandle: st.LastHandle,
    WALBytes: fmtBytes(st.WALBytes),
    LastSnapshot: st.LastSnapshot ? fmtTime(st.LastSnapshot.CreatedMs) + " (record " + st.LastSnapshot.Cut + ", " + fmtBytes(st.LastSnapshot.Bytes) + ")" : "none yet",
  };
  for (const [k, v] of Object.entries(shown)) {
    const dd = document.querySelector('[data-stat="' + k + '"]');
    if (dd.textContent !== String(v)) dd.textContent = v;
  }
}

function lockRowId(l) {
  return l.Namespace + "\u0000" + l.Key + "\u0000" + l.Handle;
}

function renderLocks(locks) {
  fill("locks", locks, (l) => {
    const id = lockRowId(l);
    const actions = el("td", { class: "actions" });
    if (state.confirming === id) {
      actions.append(
        el("span", { class: "confirm-text" }, "Release handle " + l.Handle + "?"),
        el("button", { type: "button", class: "danger confirm-release", "data-action": "confirm-release", onclick: () => forceRelease(l) }, "Confirm release"),
        el("button", { type: "button", class: "cancel-release", "data-action": "cancel-release", onclick: () => { state.confirming = ""; redrawLocks(); } }, "Cancel"));
    } else {
      actions.append(el("button", {
        type: "button", class: "force-release", "data-action": "force-release",
        "aria-label": "Force release lock " + l.Key + " in " + l.Namespace + " (handle " + l.Handle + ")",
        onclick: () => { state.confirming = id; redrawLocks(); },
      }, "Force release"));
    }
    return el("tr", { "data-ns": l.Namespace, "data-key": l.Key, "data-handle": l.Handle, "data-waiters": l.Waiters },
      el("td", {}, l.Namespace),
      el("td", { class: "key" }, l.Key),
      el("td", { class: "num", "data-col": "handle" }, l.Handle),
      el("td", { "data-col": "till", "data-till-ms": l.TillMs, title: new Date(l.TillMs).toISOString() },
        fmtTime(l.TillMs) + " ", el("span", { class: "muted left" }, untilText(l.TillMs))),
      el("td", { class: "num", "data-col": "waiters" }, l.Waiters),
      actions);
  }, state.confirming);
  // The countdowns change every second; update them in place.
  for (const td of document.querySelectorAll('#locks td[data-col="till"]')) {
    const span = td.querySelector(".left");
    const text = untilText(Number(td.dataset.tillMs));
    if (span.textContent !== text) span.textContent = text;
  }
}

function untilText(tillMs) {
  const left = tillMs - Date.now();
  return "(" + (left > 0 ? "in " + fmtDuration(left) : "now") + ")";
}

let lastLocks = [];
function redrawLocks() {
  state.rendered.locks = "";
  renderLocks(lastLocks);
}

async function forceRelease(l) {
  state.confirming = "";
  try {
    const r = await api("/admin/locks/release", { Namespace: l.Namespace, Key: l.Key, Handle: l.Handle });
    logAction("Released " + l.Namespace + "/" + l.Key + " (handle " + r.Handle + ").", false);
  } catch (e) {
    logAction("Force release of " + l.Namespace + "/" + l.Key + " failed: " + describe(e), true);
  }
  poll();
}

function renderNamespaces(nss) {
  fill("namespaces", nss, (n) => el("tr", { "data-ns": n.Name },
    el("td", {}, el("button", { type: "button", class: "link", "data-action": "browse", onclick: () => browse(n.Name) }, n.Name)),
    el("td", { class: "num" }, n.Keys), el("td", { class: "num" }, n.Counters),
    el("td", { class: "num" }, n.Locks), el("td", { class: "num" }, n.Revision)));
  const sel = $("#keys-ns");
  const names = nss.map((n) => n.Name);
  if (state.keysNs && !names.includes(state.keysNs)) names.push(state.keysNs);
  const have = Array.from(sel.options).slice(1).map((o) => o.value);
  if (JSON.stringify(have) !== JSON.stringify(names)) {
    sel.replaceChildren(el("option", { value: "" }, "choose…"), ...names.map((n) => el("option", { value: n }, n)));
    sel.value = state.keysNs;
  }
}

function renderWatches(ws) {
  fill("watches", ws, (w) => el("tr", { "data-ns": w.Namespace, "data-key": w.Key },
    el("td", {}, w.Namespace), el("td", { class: "key" }, w.Key), el("td", { class: "num", "data-col": "watchers" }, w.Watchers)));
}

function renderKeys(page) {
  fill("keys", page.Keys, (k) => {
    let v = JSON.stringify(k.Value);
    if (v.length > 300) v = v.slice(0, 300) + "…";
    return el("tr", { "data-key": k.Key },
      el("td", { class: "key" }, k.Key), el("td", {}, el("code", {}, v)), el("td", { class: "num" }, k.Version));
  });
  state.keysNext = page.Next;
  $("#keys-next").disabled = !page.Next;
  $("#keys-first").disabled = state.keysPages.length === 0;
  $("#keys-page").textContent = "page " + (state.keysPages.length + 1) + (page.Keys.length ? ": " + page.Keys[0].Key + " … " + page.Keys[page.Keys.length - 1].Key : "");
}

function browse(ns) {
  state.keysNs = ns;
  state.keysPrefix = $("#keys-prefix").value;
  state.keysAfter = "";
  state.keysPages = [];
  $("#keys-ns").value = ns;
  poll();
}

function describe(e) {
  if (e instanceof APIError) {
    if (e.status === 401 || e.status === 403) return e.message + " (enter the admin token above)";
    return e.message + (e.code ? " [" + e.code + "]" : "");
  }
  return "the server is unreachable (" + e.message + ")";
}

// logAction reports the outcome of something the user did, in the status
// line for a few seconds and in the list of recent actions for good.
function logAction(msg, bad) {
  setStatus(msg, bad);
  const list = $("#actions");
  list.prepend(el("li", { class: bad ? "bad" : "" }, fmtTime(Date.now()) + " " + msg));
  while (list.children.length > 5) list.lastElementChild.remove();
}

let flashUntil = 0; // an action's outcome stays up a few seconds

function setStatus(msg, bad, routine) {
  if (routine && Date.now() < flashUntil) return;
  if (!routine) flashUntil = Date.now() + 5000;
  const s = $("#status");
  s.textContent = msg;
  s.classList.toggle("bad", !!bad);
}

let timer = 0;
let inflight = false;
async function poll() {
  if (inflight) return;
  clearTimeout(timer);
  inflight = true;
  try {
    const jobs = [api("/admin/stats"), api(listPath("namespaces")), api(listPath("locks")), api(listPath("watches"))];
    if (state.keysNs) {
      const q = new URLSearchParams({ ns: state.keysNs, limit: KEYS_LIMIT });
      if (state.keysPrefix) q.set("prefix", state.keysPrefix);
      if (state.keysAfter) q.set("after", state.keysAfter);
      jobs.push(api("/admin/keys?" + q));
    }
    const [st, nss, locks, ws, keys] = await Promise.all(jobs);
    renderStats(st);
    renderNamespaces(nss.Namespaces);
    renderPager("namespaces", nss.Next);
    lastLocks = locks.Locks;
    renderLocks(locks.Locks);
    renderPager("locks", locks.Next);
    renderWatches(ws.Watches);
    renderPager("watches", ws.Next);
    if (keys) renderKeys(keys);
    setStatus("Live, updated " + fmtTime(Date.now()), false, true);
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    setStatus("Not updated: " + describe(e), true, true);
  } finally {
    inflight = false;
    timer = setTimeout(() => poll(), POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = state.token;
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    poll();
  });
  $("#keys-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    browse($("#keys-ns").value);
  });
  $("#keys-ns").addEventListener("change", () => browse($("#keys-ns").value));
  for (const id of Object.keys(state.lists)) wirePager(id);
  $("#keys-next").addEventListener("click", () => {
    if (!state.keysNext) return;
    state.keysPages.push(state.keysAfter);
    state.keysAfter = state.keysNext;
    poll();
  });
  $("#keys-first").addEventListener("click", () => {
    state.keysPages = [];
    state.keysAfter = "";
    poll();
  });
  poll();
});
