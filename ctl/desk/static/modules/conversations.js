// The conversation panel: the agent's open contacts (voice, chat, email, SMS, social) as
// tabs, the selected one's messages, its reply box and its wrap-up.
//
// The server is the one truth. Messages are kept per contact by `seq`, so a message seen
// twice (a push, then a re-read) is one row; after every (re)connect (`ws:open`) the
// list is re-read and each conversation's messages after the last seq shown (and any
// outgoing one whose delivery may still change): a dropped connection loses nothing and
// repeats nothing.
import { el } from "./conversations/dom.js";
import { FINAL_STATUSES, placeMessage, renderLog, system } from "./conversations/log.js";
import { composer } from "./conversations/composer.js";
import { wrapup } from "./conversations/wrapup.js";

const CHANNELS = ["voice", "chat", "email", "sms", "wechat", "weibo", "douyin", "api", "task"];
// Channels whose address means something to an agent (a chat's is a session id).
const ADDRESSES = new Set(["voice", "email", "sms"]);
const TYPING_SHOWN_MS = 6000;

export function mount(desk) {
  const t = (k, v) => desk.t(`conversations.${k}`, v);
  const root = desk.region("conversations");
  const convs = new Map(); // contact id -> conversation
  const readKey = `ctl.desk.read.${desk.me.agent_id}`;
  const read = loadRead(readKey);
  let selected = null;
  let view = null; // what the panel shows of the selected conversation

  const tabs = el("div", { class: "conv-tabs", role: "tablist", "aria-label": t("open") });
  const panel = el("div", { class: "conv-panel", role: "tabpanel", id: "conv-panel", tabindex: "-1" });
  const empty = el("p", { class: "conv-empty", text: t("none") });
  root.replaceChildren(el("h2", { class: "conv-title", text: t("title") }), tabs, empty, panel);
  panel.hidden = true;

  // --- reading from the server -------------------------------------------------------
  let loading = null;
  let again = false;
  async function reload() { // one at a time; a call meanwhile runs once more afterwards
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        try {
          await readAll();
        } catch (e) {
          if (e.status !== 401) console.warn("conversations: reading failed", e.message);
        }
      } while (again);
    })();
    try {
      await loading;
    } finally {
      loading = null;
    }
  }

  async function readAll() {
    // One request: the list, and each conversation's messages after what is shown (from
    // the first outgoing one whose delivery may still change).
    const after = [...convs.values()].map((c) => `${c.info.contact_id}:${floor(c)}`).join(",");
    const { conversations } = await desk.api(
      "GET", `/api/v1/me/conversations?messages=1&after=${encodeURIComponent(after)}`);
    const seen = new Set();
    for (const { messages, ...info } of conversations) {
      seen.add(info.contact_id);
      let conv = convs.get(info.contact_id);
      if (conv) {
        const changed = conv.info.state !== info.state;
        conv.info = { ...conv.info, ...info };
        if (changed && conv === selected) show(conv);
      } else {
        conv = fresh(info);
        convs.set(info.contact_id, conv);
      }
      took(conv, messages);
    }
    for (const id of [...convs.keys()]) if (!seen.has(id)) drop(id);
    renderTabs();
    root.dataset.loaded = "true";
    if (!selected && convs.size) select(convs.values().next().value, false);
  }

  function fresh(info) {
    return { info, messages: new Map(), lastSeq: 0, loaded: false, notes: [], tab: null,
             draft: null, typing: null };
  }

  function floor(conv) { // re-read from here: after the last seq, or an unsettled reply
    let after = conv.lastSeq;
    for (const m of conv.messages.values()) {
      if (m.direction === "out" && !FINAL_STATUSES.has(m.status) && m.channel !== "chat") {
        after = Math.min(after, m.seq - 1);
      }
    }
    return after;
  }

  async function readMessages(conv) {
    const id = conv.info.contact_id;
    const { messages } = await desk.api("GET", `/api/v1/contacts/${id}/messages?after=${floor(conv)}`);
    if (convs.get(id) === conv) took(conv, messages);
  }

  function took(conv, messages) {
    const first = !conv.loaded;
    conv.loaded = true;
    for (const m of messages) put(conv, m);
    if (first && conv === selected) show(conv); // its quote, ticket subject... need them
    updateTab(conv);
  }

  function put(conv, m) {
    const known = conv.messages.get(m.seq);
    conv.messages.set(m.seq, known ? { ...known, ...m } : m);
    if (m.seq > conv.lastSeq) conv.lastSeq = m.seq;
    if (conv === selected && view) {
      placeMessage(desk, conv, view.log, conv.messages.get(m.seq));
      if (!known) view.log.lastElementChild?.scrollIntoView?.({ block: "nearest" });
      if (document.hasFocus()) markRead(conv);
    }
  }

  // --- tabs ---------------------------------------------------------------------------
  function unread(conv) {
    const mark = read[conv.info.contact_id] || 0;
    let n = 0;
    for (const m of conv.messages.values()) if (m.direction === "in" && m.seq > mark) n += 1;
    return n;
  }

  function markRead(conv) {
    const id = conv.info.contact_id;
    if ((read[id] || 0) >= conv.lastSeq) return;
    read[id] = conv.lastSeq;
    saveRead(readKey, read, convs);
    updateTab(conv);
  }

  function renderTabs() {
    tabs.replaceChildren(...[...convs.values()].map((conv) => {
      conv.tab = conv.tab || makeTab(conv);
      updateTab(conv);
      return conv.tab;
    }));
    empty.hidden = convs.size > 0;
    panel.hidden = !selected;
  }

  function makeTab(conv) {
    const id = conv.info.contact_id;
    return el("button", { type: "button", role: "tab", id: `conv-tab-${id}`, class: "conv-tab",
                          "aria-controls": "conv-panel", "data-contact": id,
                          onclick: () => select(conv) });
  }

  function updateTab(conv) {
    const tab = conv.tab;
    if (!tab) return;
    const { channel, state } = conv.info;
    const n = unread(conv);
    const name = title(conv);
    tab.replaceChildren(
      el("span", { class: `channel ch-${channel}`, text: channelName(channel) }),
      el("span", { class: "name", text: name }),
      ...(n ? [el("span", { class: "unread", text: String(n) })] : []));
    tab.dataset.state = state;
    tab.classList.toggle("has-unread", n > 0);
    tab.setAttribute("aria-label", [channelName(channel), name,
      state === "wrapup" ? t("state_wrapup") : null, n ? t("unread", { count: n }) : null]
      .filter(Boolean).join(", "));
    const on = conv === selected;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on || (!selected && conv === convs.values().next().value) ? 0 : -1;
  }

  function title(conv) {
    const i = conv.info;
    return i.customer_name || i.address || t("unknown_customer");
  }

  function channelName(channel) {
    return CHANNELS.includes(channel) ? t(`channel_${channel}`) : channel;
  }

  function select(conv, focus = true) {
    const before = selected;
    selected = conv;
    if (before && before !== conv) updateTab(before);
    if (!view || view.conv !== conv) show(conv); // already shown: keep what is being typed
    updateTab(conv);
    markRead(conv);
    panel.hidden = false;
    if (focus) conv.tab.focus();
    if (before !== conv) {
      desk.emit("conversation:selected", { contact_id: conv.info.contact_id,
                                           customer_id: conv.info.customer_id,
                                           channel: conv.info.channel });
    }
  }

  function drop(id) {
    const conv = convs.get(id);
    convs.delete(id);
    conv.tab?.remove();
    delete read[id];
    saveRead(readKey, read, convs);
    desk.emit("conversation:closed", { contact_id: id });
    if (selected === conv) {
      selected = null;
      view = null;
      panel.replaceChildren();
      const next = convs.values().next().value;
      if (next) select(next, false);
    }
    renderTabs();
  }

  // Tabs pattern: arrows move between tabs (and select: switching is one key), Home/End;
  // anywhere in the desk Alt+1..9 jumps to a tab.
  tabs.addEventListener("keydown", (ev) => {
    const list = [...convs.values()];
    const at = list.indexOf(selected);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: list.length - 1 }[ev.key];
    if (to === undefined || !list.length) return;
    ev.preventDefault();
    select(list[(to + list.length) % list.length]);
  });
  document.addEventListener("keydown", (ev) => {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey || !/^Digit[1-9]$/.test(ev.code)) return;
    const conv = [...convs.values()][Number(ev.code.slice(5)) - 1];
    if (!conv) return;
    ev.preventDefault();
    select(conv);
  });

  // --- the selected conversation ------------------------------------------------------
  function show(conv) {
    const i = conv.info;
    // Re-rendering the conversation on screen (its state changed) keeps the focus where
    // the agent was, e.g. typing a reply (ids are per conversation and stable).
    const active = view && view.conv === conv && panel.contains(document.activeElement)
      ? document.activeElement : null;
    const log = el("ol", { class: "conv-log", "aria-label": t("messages"), "aria-live": "polite" });
    const typing = el("p", { class: "typing", "aria-live": "polite" });
    const head = el("header", { class: "conv-head" },
      el("span", { class: `channel ch-${i.channel}`, text: channelName(i.channel) }),
      el("strong", { class: "who", text: title(conv) }),
      ADDRESSES.has(i.channel) && i.address ? el("span", { class: "address", text: i.address }) : null,
      i.subject ? el("span", { class: "subject", text: i.subject }) : null,
      i.state === "wrapup" ? el("span", { class: "state", text: t("state_wrapup") }) : null);
    const parts = [head, log, typing];
    let reply = null;
    if (i.channel === "voice") {
      parts.push(el("p", { class: "note", text: t("voice_note") }));
    } else if (i.address) {
      reply = composer(desk, conv, send);
      parts.push(reply.form);
    }
    parts.push(wrapup(desk, conv, reload));
    panel.replaceChildren(...parts);
    panel.setAttribute("aria-labelledby", conv.tab ? conv.tab.id : "");
    view = { conv, log, typing, reply };
    renderLog(desk, conv, log);
    showTyping(conv);
    log.lastElementChild?.scrollIntoView?.({ block: "nearest" });
    const again = active && active.id && document.getElementById(active.id);
    if (again) {
      again.focus();
      if ("selectionStart" in active && again.setSelectionRange && active.selectionStart !== null) {
        again.setSelectionRange(active.selectionStart, active.selectionEnd);
      }
    }
  }

  function showTyping(conv) {
    if (!view || view.conv !== conv) return;
    view.typing.textContent = conv.typing ? t("customer_typing", { name: title(conv) }) : "";
  }

  async function send(conv, { text, subject, files }) {
    const id = conv.info.contact_id;
    const path = `/api/v1/contacts/${id}/messages`;
    const sending = el("li", { class: "msg out pending" },
      el("div", { class: "meta" }, el("span", { class: "status status-queued", text: t("sending") })),
      el("div", { class: "text", text }));
    if (view && view.conv === conv) view.log.append(sending);
    try {
      if (files.length) {
        const form = new FormData();
        form.append("text", text);
        if (subject !== undefined) form.append("subject", subject);
        for (const f of files) form.append("file", f, f.name);
        await desk.upload(path, form);
      } else {
        await desk.api("POST", path, subject === undefined ? { text } : { text, subject });
      }
    } finally {
      sending.remove();
      await readMessages(conv).catch(() => {}); // the stored row: its seq and status
    }
  }

  // --- pushes and the desk's events ---------------------------------------------------
  desk.on("ws:open", () => reload());
  desk.on("offer:accepted", async ({ contact_id }) => {
    await reload();
    const conv = convs.get(contact_id);
    if (!conv) return;
    if (conv !== selected) select(conv, false);
    // Ready to answer, unless the agent is already at work in the panel.
    if (!panel.contains(document.activeElement)) (view.reply || conv.tab).focus();
  });
  desk.on("Assigned", async ({ contact_id }) => {
    await reload();
    const conv = convs.get(contact_id);
    if (conv && !selected) select(conv, false);
  });
  desk.on("WrapupStarted", () => reload());
  desk.on("Released", ({ contact_id }) => {
    if (convs.has(contact_id)) drop(contact_id);
  });
  // A supervisor took a conversation over: it leaves its agent's panel and joins theirs.
  desk.on("TakenOver", () => reload());
  desk.on("message", ({ contact, message }) => {
    const conv = convs.get(contact);
    if (!conv) {
      reload();
      return;
    }
    if (message.seq > conv.lastSeq + 1 && conv.loaded) { // one was missed: read the gap
      readMessages(conv).catch(() => {});
    }
    if (message.direction === "in") conv.typing = null;
    showTyping(conv);
    put(conv, message);
    updateTab(conv);
  });
  desk.on("message_status", ({ contact, message, status, reason }) => {
    const conv = convs.get(contact);
    if (!conv) return;
    for (const m of conv.messages.values()) {
      if (m.id === message) put(conv, { ...m, status, status_reason: reason || null });
    }
  });
  desk.on("typing", ({ contact, on }) => {
    const conv = convs.get(contact);
    if (!conv) return;
    clearTimeout(conv.typing);
    conv.typing = on ? setTimeout(() => { conv.typing = null; showTyping(conv); }, TYPING_SHOWN_MS) : null;
    showTyping(conv);
  });
  desk.on("customer_left", ({ contact }) => {
    const conv = convs.get(contact);
    if (!conv) return;
    conv.notes.push(t("customer_left"));
    if (view && view.conv === conv) view.log.append(system(t("customer_left")));
  });
  desk.on("composer:insert", ({ contact_id, text }) => {
    const conv = convs.get(contact_id);
    if (!conv || !text) return;
    if (view && view.conv === conv && view.reply) {
      view.reply.insert(text);
    } else if (conv.info.channel !== "voice") { // shown in its reply box when selected
      conv.draft = { ...(conv.draft || { text: "" }) };
      conv.draft.text = text + conv.draft.text;
    }
  });
  window.addEventListener("focus", () => {
    if (selected) markRead(selected);
  });

  // The first ws:open reads everything (reading at mount as well read it all twice, the
  // second pass needed anyway for what arrived before the socket subscribed); if the
  // push socket cannot open (a proxy refusing websockets), read without it.
  setTimeout(() => {
    if (!root.dataset.loaded && !loading) reload();
  }, 3000);
}

function loadRead(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "{}") || {};
  } catch {
    return {};
  }
}

function saveRead(key, read, convs) {
  for (const id of Object.keys(read)) if (!convs.has(id)) delete read[id];
  try {
    localStorage.setItem(key, JSON.stringify(read));
  } catch {
    // storage full or disabled: unread counts only last until a reload
  }
}
