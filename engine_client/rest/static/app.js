"use strict";
// The engine-client web page: log in (the SSO password grant), then show /ui/fleet and follow
// /ui/events (Server-Sent Events read with fetch, so that the Bearer token goes in a header).
const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("engine-client-token");
let reload = null;

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value === null || value === undefined ? "-" : String(value);
  if (cls) el.className = cls;
  return el;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : text("td", c));
  return tr;
}

async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (resp.status === 401) { logout(); throw new Error("logged out"); }
  return resp.json();
}

function diffText(d) {
  return Object.entries(d.diff)
    .map(([k, v]) => `${k}: expected ${v.expected}, host has ${v.actual}`).join("; ");
}

function showFleet(f) {
  $("#who").textContent = "logged in as " + f.user;
  const outOfSync = {};
  for (const n of f.networks) for (const h of n.hosts) {
    if (!h.in_sync) (outOfSync[h.host] ||= []).push(n.name);
  }
  const hosts = $("#hosts tbody");
  hosts.replaceChildren(...f.hosts.map((h) => row([
    h.name, h.dc,
    h.reachable === null ? text("td", "not read yet", "dim")
      : text("td", h.reachable ? "yes" : "no: " + h.error, h.reachable ? "ok" : "bad"),
    h.agent_version, h.labels.join(", ") || "-",
    text("td", (outOfSync[h.name] || []).join(", ") || "-",
         outOfSync[h.name] ? "bad" : "ok"),
  ])));
  const nets = $("#networks tbody");
  nets.replaceChildren(...f.networks.map((n) => {
    const cell = document.createElement("td");
    for (const h of n.hosts) {
      const line = text("div", `${h.host} (${h.attached}${h.via_label ? ", label " + h.via_label : ""}): `
        + (h.in_sync ? "in sync" : "out of sync"), h.in_sync ? "ok" : "bad");
      line.dataset.host = h.host;
      if (!h.in_sync) line.append(text("div", diffText(h) || h.last_error || "", "diff"));
      cell.append(line);
    }
    if (!n.hosts.length) cell.append(text("span", "not attached", "dim"));
    const tr = row([n.name, n.dc, n.vlan ?? "none", n.mtu, n.vm ? "VM" : "non-VM",
                    n.label ?? "-", cell]);
    tr.dataset.network = n.name;
    return tr;
  }));
  $("#events").replaceChildren();
  for (const e of f.events) addEvent(e);
}

function addEvent(e) {
  const when = new Date(e.time * 1000).toLocaleTimeString();
  const li = text("li", `${when} ${e.message}`, e.severity);
  li.title = "correlation id " + (e.correlation_id || "-");
  $("#events").prepend(li);
}

async function refresh() { showFleet(await api("/ui/fleet")); }

async function follow() {
  const resp = await fetch("/ui/events", { headers: { Authorization: "Bearer " + token } });
  if (resp.status === 401) { logout(); return; }
  $("#live").textContent = "(live)";
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const chunk = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = chunk.split("\n").filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6)).join("\n");
      if (!data) continue;
      addEvent(JSON.parse(data));
      // Re-read the fleet once a burst of events is over (a rollout sends many).
      clearTimeout(reload);
      reload = setTimeout(refresh, 150);
    }
  }
  $("#live").textContent = "(stream closed, reconnecting)";
  setTimeout(follow, 2000);
}

function logout() {
  if (token) fetch("/ovirt-engine/services/sso-logout", { method: "POST",
    headers: { Authorization: "Bearer " + token } });
  token = null;
  sessionStorage.removeItem("engine-client-token");
  $("#fleet").hidden = true; $("#login").hidden = false; $("#logout").hidden = true;
  $("#who").textContent = "";
}

async function start() {
  $("#login").hidden = true; $("#fleet").hidden = false; $("#logout").hidden = false;
  await refresh();
  follow();
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = new URLSearchParams({ grant_type: "password", scope: "ovirt-app-api",
    username: $("#user").value, password: $("#password").value });
  const resp = await fetch("/ovirt-engine/sso/oauth/token", { method: "POST", body,
    headers: { Accept: "application/json" } });
  const doc = await resp.json();
  if (!resp.ok) { $("#login-error").textContent = doc.error_description; return; }
  token = doc.access_token;
  sessionStorage.setItem("engine-client-token", token);
  $("#password").value = "";
  $("#login-error").textContent = "";
  start();
});
$("#logout").addEventListener("click", logout);
if (token) start();
