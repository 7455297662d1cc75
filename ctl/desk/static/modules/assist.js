// Assist: the knowledge base and quick replies beside the open conversation. A search
// box over published articles (Chinese and English), articles and replies suggested
// from what the selected conversation's customer wrote, the quick replies (click, or
// type "/" + shortcut in a reply box), and an editor for one's own replies and, for
// supervisors and admins, articles and the team's replies.
//
// Inserting asks the server to fill the reply's variables for the conversation, then
// emits `composer:insert` {contact_id, text}: the conversations module puts the text
// into that conversation's reply box.
import { articleBody, byLanguage, el } from "./assist/dom.js";
import { openEditor } from "./assist/editor.js";
import { attachPicker } from "./assist/picker.js";

export function mount(desk) {
  const t = (k, v) => desk.t(`assist.${k}`, v);
  const root = desk.region("assist");
  let contactId = null;
  let replies = [];

  const status = el("p", { class: "assist-status", role: "status" });
  const report = (text, bad = false) => {
    status.textContent = text;
    status.classList.toggle("bad", bad);
  };

  // --- search ------------------------------------------------------------------------
  const query = el("input", { type: "search", id: "assist-q", name: "q", autocomplete: "off",
                              placeholder: t("search_placeholder") });
  const results = el("ul", { class: "assist-articles", id: "assist-results",
                             "aria-label": t("results") });
  const search = el("form", { class: "assist-search", role: "search",
                              onsubmit: (ev) => { ev.preventDefault(); find(); } },
                    el("label", { for: query.id, text: t("search") }), query,
                    el("button", { type: "submit", text: t("search_button") }));
  let asked = 0;
  async function find() {
    const q = query.value.trim();
    const mine = ++asked;
    if (!q) {
      results.replaceChildren();
      return;
    }
    try {
      const found = await desk.api("GET", `/api/v1/knowledge/articles?q=${encodeURIComponent(q)}`);
      if (mine !== asked) return; // a later search answered first
      results.replaceChildren(...(found.articles.length ? found.articles.map(article)
        : [el("li", { class: "empty", text: t("no_results", { q }) })]));
    } catch (e) {
      report(e.message, true);
    }
  }
  let typing = null;
  query.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(find, 250);
  });

  function article(a) {
    const insert = el("button", { type: "button", class: "insert", text: t("insert"),
                                  "aria-label": t("insert_article", { title: a.title }),
                                  onclick: () => emit(`${a.title}\n\n${a.body}`, a.title) });
    return el("li", { class: "article", "data-id": a.id, lang: a.language },
      el("details", {},
        el("summary", {}, el("span", { class: "title", text: a.title }),
           ...a.tags.map((tag) => el("span", { class: "tag", text: tag }))),
        articleBody(a), insert));
  }

  // --- suggestions -------------------------------------------------------------------
  const suggested = el("section", { class: "assist-suggested", "aria-label": t("suggested") },
                       el("h3", { text: t("suggested") }));
  const suggestedList = el("ul", { class: "assist-articles", id: "assist-suggested" });
  suggested.append(suggestedList);
  suggested.hidden = true;
  async function suggest() {
    if (!contactId) {
      suggested.hidden = true;
      return;
    }
    const wanted = contactId;
    try {
      const hints = await desk.api("GET", `/api/v1/contacts/${encodeURIComponent(wanted)}/suggestions`);
      if (wanted !== contactId) return;
      suggestedList.replaceChildren(...hints.articles.map(article),
                                    ...hints.replies.map(replyItem));
      suggested.hidden = !hints.articles.length && !hints.replies.length;
    } catch (e) {
      suggested.hidden = true;
      if (e.status !== 403 && e.status !== 404) report(e.message, true);
    }
  }

  // --- quick replies -----------------------------------------------------------------
  const filter = el("input", { type: "search", id: "assist-reply-filter", autocomplete: "off",
                               placeholder: t("replies_placeholder") });
  const replyList = el("ul", { class: "assist-replies", id: "assist-replies",
                               "aria-label": t("replies") });
  filter.addEventListener("input", () => showReplies());
  const repliesBox = el("section", { class: "assist-reply-box", "aria-label": t("replies") },
    el("h3", { text: t("replies") }),
    el("label", { for: filter.id, class: "visually-hidden", text: t("replies_filter") }), filter,
    replyList);

  function replyItem(r) {
    return el("li", { class: `reply ${r.scope}`, "data-id": r.id, lang: r.language },
      el("button", { type: "button", class: "insert-reply", title: r.body,
                     "aria-label": t("insert_reply", { shortcut: r.shortcut, title: r.title }),
                     onclick: () => insertReply(r) },
         el("b", { text: r.shortcut }), " ", el("span", { text: r.title }),
         el("small", { text: r.scope === "team" ? t("team") : t("personal") })));
  }

  function showReplies() {
    const f = filter.value.trim().toLowerCase();
    const shown = replies.filter((r) => !f || r.shortcut.toLowerCase().includes(f)
      || r.title.toLowerCase().includes(f) || r.body.toLowerCase().includes(f));
    replyList.replaceChildren(...(shown.length ? shown.map(replyItem)
      : [el("li", { class: "empty", text: t("no_replies") })]));
  }

  async function loadReplies() {
    try {
      replies = (await desk.api("GET", "/api/v1/quick-replies")).replies
        .sort(byLanguage(desk.me.language));
      showReplies();
    } catch (e) {
      report(e.message, true);
    }
  }

  async function render(r) {
    const out = await desk.api("POST", `/api/v1/quick-replies/${encodeURIComponent(r.id)}/render`,
                               contactId ? { contact_id: contactId } : {});
    return out.text;
  }

  function emit(text, title) {
    desk.emit("composer:insert", { contact_id: contactId, text });
    report(t("inserted", { title }));
  }

  async function insertReply(r) {
    try {
      emit(await render(r), r.title);
    } catch (e) {
      report(e.message, true);
    }
  }

  const manage = el("button", { type: "button", class: "assist-manage", text: t("manage"),
                                onclick: () => openEditor(desk, { changed: loadReplies }) });

  root.replaceChildren(el("div", { class: "assist" }, search, results, suggested,
                          repliesBox, manage, status));
  attachPicker(desk, { replies: () => replies, render, report });

  desk.on("conversation:selected", (d) => {
    contactId = d && d.contact_id ? d.contact_id : null;
    suggest();
  });
  desk.on("conversation:closed", (d) => {
    if (d && d.contact_id === contactId) {
      contactId = null;
      suggest();
    }
  });
  desk.on("message", (m) => {
    if (m.contact === contactId && m.message && m.message.direction === "in") suggest();
  });
  desk.on("ws:open", () => {
    loadReplies();
    suggest();
  });
}
