// The supervisor view (supervisors and admins only), in the `main` region: live queue
// tiles, the agents with their state and time in it, the active alerts, and per contact
// listen / whisper / barge (calls) or take over (other channels).
//
// What it shows is always GET /api/v1/supervision: read at every (re)connect and again
// shortly after routing pushes (a burst of events costs one read); `alert` pushes show at
// once. Waits and times in state tick locally between reads. Each contact carries its
// intent and sentiment badge, and a "frequent issues" panel sits beside the queues
// (supervisor/insights.js).
import { insights } from "./supervisor/insights.js";

const ROLES = new Set(["supervisor", "admin"]);
const ROUTING = ["Offered", "OfferEnded", "Requeued", "Assigned", "Transferred", "Consulting",
  "ConsultEnded", "TakenOver", "WrapupStarted", "Released", "Overflowed", "StepExpired",
  "AgentChanged"];
const MODES = ["listen", "whisper", "barge"];

export function mount(desk) {
  if (!ROLES.has(desk.me.role)) return;
  const t = (key, vars) => desk.t(`supervisor.${key}`, vars);
  const root = el("details", "supervisor");
  root.open = true;
  const summary = el("summary", "", t("title"));
  const status = el("p", "status");
  status.setAttribute("role", "status");
  const alerts = el("ul", "alerts");
  alerts.setAttribute("aria-label", t("alerts"));
  alerts.setAttribute("aria-live", "polite");
  const tiles = el("div", "tiles");
  tiles.setAttribute("role", "list");
  tiles.setAttribute("aria-label", t("queues"));
  const table = el("table", "agents");
  table.createCaption().textContent = t("agents");
  const head = table.createTHead().insertRow();
  for (const key of ["agent", "state", "in_state", "contacts"]) {
    const th = el("th", "", t(`col_${key}`));
    th.scope = "col";
    head.append(th);
  }
  const body = table.createTBody();
  const insight = insights(desk, t);
  root.append(summary, status, alerts, tiles, insight.panel, table);
  desk.region("main").append(root);

  let data = null;
  let skew = 0; // server clock minus ours, seconds
  let timer = null;
  const names = new Map(); // agent id -> display name

  async function refresh() {
    timer = null;
    try {
      data = await desk.api("GET", "/api/v1/supervision");
      skew = data.now - Date.now() / 1000;
      status.textContent = "";
      render();
    } catch (e) {
      status.textContent = t("failed", { error: e.message });
    }
  }
  const soon = () => { if (timer === null) timer = setTimeout(refresh, 250); };

  desk.on("ws:open", refresh);
  for (const type of ROUTING) desk.on(type, soon);
  desk.on("monitor", soon);
  desk.on("alert", (msg) => {
    if (!data) return;
    const same = (a) => a.queue === msg.alert.queue && a.kind === msg.alert.kind;
    data.alerts = data.alerts.filter((a) => !same(a));
    if (msg.state === "raised") data.alerts.push(msg.alert);
    render();
    soon();
  });
  setInterval(tick, 1000);

  function now() { return Date.now() / 1000 + skew; }

  function render() {
    for (const a of data.agents) names.set(a.id, a.name || a.username);
    renderAlerts();
    renderTiles();
    renderAgents();
    tick();
  }

  function renderAlerts() {
    alerts.replaceChildren(...data.alerts.map((a) => {
      const li = el("li", "alert", t(`alert_${a.kind}`, {
        queue: a.queue, value: figure(a.kind, a.value), threshold: figure(a.kind, a.threshold),
      }));
      li.dataset.queue = a.queue;
      li.dataset.kind = a.kind;
      li.setAttribute("role", "alert");
      return li;
    }));
  }

  function renderTiles() {
    const alerting = new Set(data.alerts.map((a) => a.queue));
    tiles.replaceChildren(...data.queues.map((q) => {
      const tile = el("section", "tile");
      tile.setAttribute("role", "listitem");
      tile.dataset.queue = q.name;
      tile.classList.toggle("alerting", alerting.has(q.name));
      const sl = q.service_level === null ? "–" : `${Math.round(q.service_level * 100)}%`;
      const dl = el("dl");
      const row = (key, value, cls) => {
        const dd = el("dd", cls || "", value);
        dl.append(el("dt", "", t(key)), dd);
        return dd;
      };
      row("waiting", String(q.waiting), "waiting");
      const wait = row("longest_wait", duration(q.oldest_wait), "longest");
      wait.dataset.since = q.waiting ? String(data.now - q.oldest_wait) : "";
      row("service_level", sl, "sl");
      row("agents_available", String(q.agents.available), "available");
      row("agents_busy", String(q.agents.busy), "busy");
      tile.append(el("h3", "", q.name), dl);
      return tile;
    }));
  }

  function renderAgents() {
    const mine = data.monitors.find((m) => m.supervisor_id === desk.me.agent_id);
    body.replaceChildren(...data.agents.filter((a) => a.status !== "offline" || a.contacts.length)
      .map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.agent = a.id;
        tr.insertCell().textContent = a.name || a.username;
        const state = tr.insertCell();
        state.textContent = t(`state_${a.status}`) + (a.reason ? ` (${a.reason})` : "");
        state.className = `state ${a.status}`;
        const since = tr.insertCell();
        since.className = "since";
        since.dataset.since = a.since === null || a.since === undefined ? "" : String(a.since);
        const cell = tr.insertCell();
        for (const c of a.contacts) cell.append(contactItem(a, c, mine));
        return tr;
      }));
  }

  function contactItem(agent, contact, mine) {
    const item = el("div", "contact");
    item.dataset.contact = contact.id;
    item.append(el("span", "what", t("contact", { channel: contact.channel, queue: contact.queue })),
      insight.badge(contact.id));
    const who = agent.name || agent.username;
    if (contact.state !== "assigned" || agent.id === desk.me.agent_id) return item;
    if (contact.channel === "voice") {
      const group = el("div", "monitor");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", t("monitor_group", { agent: who }));
      const active = mine && mine.contact_id === contact.id ? mine : null;
      for (const mode of MODES) {
        const b = button(t(mode), t(`${mode}_label`, { agent: who }), () => monitor(contact.id, mode));
        b.setAttribute("aria-pressed", String(!!active && active.mode === mode));
        b.disabled = !!mine && !active;
        group.append(b);
      }
      if (active) {
        group.append(el("span", "monitoring", t(`monitor_${active.state}`)));
        group.append(button(t("stop"), t("stop_label", { agent: who }), () => stop(contact.id)));
      }
      item.append(group);
    } else {
      item.append(button(t("take_over"), t("take_over_label", { agent: who }),
        () => takeOver(contact.id)));
    }
    return item;
  }

  async function act(work) {
    try {
      await work();
      status.textContent = "";
    } catch (e) {
      status.textContent = t("failed", { error: e.message });
    }
    soon();
  }
  const monitor = (id, mode) => act(() => desk.api("POST", `/api/v1/contacts/${id}/monitor`, { mode }));
  const stop = (id) => act(() => desk.api("DELETE", `/api/v1/contacts/${id}/monitor`));
  const takeOver = (id) => act(async () => {
    await desk.api("POST", `/api/v1/contacts/${id}/takeover`);
    status.textContent = t("taken_over");
  });

  function tick() {
    const at = now();
    for (const node of root.querySelectorAll("[data-since]")) {
      if (node.dataset.since) node.textContent = duration(at - Number(node.dataset.since));
      else if (node.classList.contains("since")) node.textContent = "–";
    }
  }

  function figure(kind, value) {
    if (kind === "service_level") return `${Math.round(value * 100)}%`;
    if (kind === "longest_wait") return duration(value);
    return String(value);
  }

  function button(text, label, onClick) {
    const b = el("button", "", text);
    b.type = "button";
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${pad(m % 60)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function pad(n) { return String(n).padStart(2, "0"); }

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
