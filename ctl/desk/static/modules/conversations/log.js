// One conversation's messages on screen: an ordered list keyed by `seq`, so a message
// read twice (a push and a re-read after a reconnect) is one row, updated in place.
import { el, when } from "./dom.js";

export const FINAL_STATUSES = new Set(["delivered", "read", "failed", "received"]);

export function renderLog(desk, conv, list) {
  list.replaceChildren(...[...conv.messages.values()]
    .sort((a, b) => a.seq - b.seq)
    .map((m) => row(desk, conv, m)));
  for (const note of conv.notes) list.append(system(note));
}

// Insert or update `m` in a rendered list (most often an append at the end).
export function placeMessage(desk, conv, list, m) {
  const fresh = row(desk, conv, m);
  const old = list.querySelector(`li[data-seq="${m.seq}"]`);
  if (old) {
    old.replaceWith(fresh);
    return;
  }
  const after = [...list.querySelectorAll("li[data-seq]")].find((li) => Number(li.dataset.seq) > m.seq);
  list.insertBefore(fresh, after || list.querySelector("li.sys") || null);
}

export function system(text) {
  return el("li", { class: "msg sys", text });
}

function row(desk, conv, m) {
  const who = m.direction === "in"
    ? conv.info.customer_name || m.address
    : desk.t("conversations.you");
  const meta = el("div", { class: "meta" },
    el("span", { class: "who", text: who }),
    el("time", { datetime: m.at, text: when(m.at, desk.me.language) }));
  if (m.direction === "out") meta.append(status(desk, m));
  const li = el("li", { class: `msg ${m.direction}`, "data-seq": String(m.seq), "data-id": m.id },
    meta);
  if (m.subject && conv.info.channel === "email") {
    li.append(el("div", { class: "subject", text: m.subject }));
  }
  if (m.text) li.append(el("div", { class: "text", text: m.text }));
  if (m.attachments && m.attachments.length) {
    li.append(el("ul", { class: "files", "aria-label": desk.t("conversations.attachments") },
      ...m.attachments.map((a) => el("li", {}, file(desk, a)))));
  }
  return li;
}

function status(desk, m) {
  const label = desk.t(`conversations.status_${m.status}`);
  const text = m.status === "failed" && m.status_reason ? `${label}: ${m.status_reason}` : label;
  return el("span", { class: `status status-${m.status}`, text, title: m.status_reason || undefined });
}

function file(desk, a) {
  if (a.dropped || !a.sha256) {
    return el("span", { class: "dropped", text: `${a.name}: ${a.dropped || ""}` });
  }
  const size = a.size >= 1024 ? `${Math.round(a.size / 1024)} KB` : `${a.size} B`;
  return el("a", { href: `/api/v1/attachments/${a.sha256}`, download: a.name,
                   text: `${a.name} (${size})` });
}

// The customer's message quoted for an email reply: a header line, then "> " lines.
export function quote(desk, conv, m) {
  const name = conv.info.customer_name || m.address;
  const head = desk.t("conversations.quote_header", { date: when(m.at, desk.me.language), name });
  const lines = (m.text || "").replace(/\s+$/, "").split(/\r?\n/);
  return `${head}\n${lines.map((l) => (l ? `> ${l}` : ">")).join("\n")}`;
}

export function lastInbound(conv) {
  let best = null;
  for (const m of conv.messages.values()) {
    if (m.direction === "in" && (!best || m.seq > best.seq)) best = m;
  }
  return best;
}
