// What customers want and how they feel, for the supervisor view: an intent and sentiment
// badge per live contact (`badge(id)`, kept current in place), and a "frequent issues"
// panel (top intents and keywords of a window, the waiting contacts' moods).
//
// Read from GET /api/v1/nlp/open and /api/v1/nlp/summary at every (re)connect; each `nlp`
// push (one per analysed customer text, sent to supervisors) updates its contact's badge
// at once and re-reads both a moment later (a burst of texts costs one read). Sentiment
// is written out ("Negative"), never shown by colour alone.
import { el } from "../../dom.js";

const WINDOWS = [1, 24, 24 * 7]; // hours
const SETTLE_MS = 1000;

export function insights(desk, t) {
  const open = new Map(); // contact id -> {intent, sentiment, channel, state, agent_id}
  let hours = 24;
  let timer = null;

  const panel = el("section", "insights");
  panel.setAttribute("aria-labelledby", "insights-title");
  const title = el("h3", "", t("issues_title"));
  title.id = "insights-title";
  const range = el("select", "window");
  range.id = "insights-window";
  for (const h of WINDOWS) {
    const o = el("option", "", t(`window_${h}`));
    o.value = String(h);
    o.selected = h === hours;
    range.append(o);
  }
  range.addEventListener("change", () => { hours = Number(range.value); read(); });
  const label = el("label", "", t("window"));
  label.htmlFor = range.id;
  const total = el("p", "total");
  const intents = list("intents", t("top_intents"));
  const words = list("keywords", t("top_keywords"));
  const waiting = list("waiting", t("waiting_contacts"));
  panel.append(el("div", "head"), total, intents.box, words.box, waiting.box);
  panel.firstChild.append(title, label, range);

  function list(cls, heading) {
    const items = el("ol", cls);
    items.setAttribute("aria-label", heading);
    const box = el("div", `box ${cls}`);
    box.append(el("h4", "", heading), items);
    return { box, items };
  }

  async function read() {
    timer = null;
    try {
      const [now, summary] = await Promise.all([
        desk.api("GET", "/api/v1/nlp/open"),
        desk.api("GET", `/api/v1/nlp/summary?hours=${hours}`)]);
      open.clear();
      for (const [id, insight] of Object.entries(now.contacts)) open.set(id, insight);
      renderSummary(summary);
      for (const id of open.keys()) refresh(id);
    } catch (e) {
      total.textContent = t("failed", { error: e.message });
    }
  }
  const soon = () => { if (timer === null) timer = setTimeout(read, SETTLE_MS); };

  desk.on("ws:open", read);
  desk.on("nlp", (msg) => {
    const was = open.get(msg.contact_id) || {};
    // A text without an intent keeps the contact's last one (as the server reads it).
    open.set(msg.contact_id, { ...was, intent: msg.intent || was.intent || null,
                               sentiment: msg.sentiment });
    refresh(msg.contact_id);
    soon();
  });

  function intentName(name) {
    const key = `intent_${name}`;
    const text = t(key);
    return text === `supervisor.${key}` ? name.replaceAll("_", " ") : text;
  }

  function renderSummary(s) {
    total.textContent = t("texts", { count: s.texts });
    intents.items.replaceChildren(...Object.entries(s.intents)
      .filter(([name]) => name !== "none").slice(0, 8)
      .map(([name, n]) => counted(intentName(name), n, { intent: name })));
    words.items.replaceChildren(...s.keywords.slice(0, 12)
      .map(([word, n]) => counted(word, n, { keyword: word })));
    renderWaiting();
  }

  function renderWaiting() {
    const rows = [...open.entries()].filter(([, c]) => c.state && !c.agent_id);
    rows.sort(([, a], [, b]) => (b.sentiment === "negative") - (a.sentiment === "negative"));
    waiting.items.replaceChildren(...rows.map(([id, c]) => {
      const li = el("li", "", `${c.channel} `);
      li.append(badge(id));
      return li;
    }));
    waiting.box.hidden = rows.length === 0;
  }

  function counted(text, n, data) {
    const li = el("li");
    Object.assign(li.dataset, data);
    li.append(el("span", "name", text), el("span", "count", String(n)));
    return li;
  }

  // A contact's badges: placed by the caller, filled (and refilled on pushes) here.
  function badge(id) {
    const span = el("span", "insight");
    span.dataset.contact = id;
    fill(span, open.get(id));
    return span;
  }

  function refresh(id) {
    for (const span of document.querySelectorAll(`.insight[data-contact="${CSS.escape(id)}"]`)) {
      fill(span, open.get(id));
    }
  }

  function fill(span, insight) {
    if (!insight) {
      span.replaceChildren();
      return;
    }
    const parts = [];
    if (insight.intent) {
      parts.push(el("span", "intent", intentName(insight.intent)));
      parts[0].title = t("intent");
    }
    if (insight.sentiment) {
      const mood = el("span", `mood ${insight.sentiment}`, t(`sentiment_${insight.sentiment}`));
      mood.dataset.sentiment = insight.sentiment;
      parts.push(mood);
    }
    span.replaceChildren(...parts);
    span.setAttribute("aria-label", t("insight_label", {
      intent: insight.intent ? intentName(insight.intent) : t("no_intent"),
      sentiment: t(`sentiment_${insight.sentiment || "neutral"}`),
    }));
    span.setAttribute("role", "group");
  }

  return { panel, badge };
}
