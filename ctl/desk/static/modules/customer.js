// The customer 360 (region "customer"): who the selected conversation's customer is,
// their identities and tags, tickets, CRM data, merges, and a timeline of every contact
// on every channel. The timeline comes a page at a time (more as the agent scrolls) and
// an entry's details (IVR path, recordings, transcripts, messages) are only built when
// opened, so a customer with thousands of entries costs what is on screen.

const PAGE = 30;
const ICONS = { voice: "☎", chat: "💬", email: "✉", sms: "📱", wechat: "微", weibo: "微",
  douyin: "抖", api: "⇄", task: "✓", ticket: "🎫" };

export function mount(desk) {
  const root = desk.region("customer");
  const t = (key, vars) => desk.t(`customer.${key}`, vars);
  let shown = null; // the customer id on screen
  let generation = 0; // answers for an earlier selection are dropped
  let next = null; // the timeline's cursor
  let loading = false;

  root.innerHTML = "";
  root.classList.add("c360");
  const finder = searchForm();
  const body = el("div", "c360-body");
  body.setAttribute("aria-live", "polite");
  root.append(finder, body);
  body.append(el("p", "c360-empty", t("none")));

  const more = button(t("more"), () => loadPage(generation));
  more.className = "c360-more";
  // Scrolling near the end brings the next page (the button does it for the keyboard).
  root.addEventListener("scroll", () => {
    if (next && !loading && root.scrollTop + root.clientHeight > root.scrollHeight - 300) {
      loadPage(generation);
    }
  }, { passive: true });

  desk.on("conversation:selected", (d) => {
    if (d && d.customer_id) {
      show(d.customer_id);
    } else { // an anonymous caller: nobody to show, and not the previous customer either
      generation++;
      shown = null;
      body.replaceChildren(el("p", "c360-empty", t("anonymous")));
    }
  });
  desk.on("ws:open", () => {
    if (shown) show(shown); // pushes have no replay: read it again
  });

  async function show(id) {
    const mine = ++generation;
    shown = id;
    next = null;
    let c;
    try {
      c = await desk.api("GET", `/api/v1/customers/${encodeURIComponent(id)}`);
    } catch (e) {
      if (mine === generation) body.replaceChildren(error(e.message));
      return;
    }
    if (mine !== generation) return;
    const timeline = el("ol", "c360-timeline");
    timeline.setAttribute("aria-label", t("timeline"));
    body.replaceChildren(
      profile(c), identities(c), tagEditor(c), tickets(c), crm(c, mine), merges(c),
      el("h3", "", t("timeline")), timeline, more);
    body.dataset.customer = c.id;
    more.hidden = true;
    await loadPage(mine, true);
  }

  async function loadPage(mine, first = false) {
    if (loading && !first) return;
    loading = true;
    more.disabled = true;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (!first && next) q.set("cursor", next);
    try {
      const page = await desk.api("GET",
        `/api/v1/customers/${encodeURIComponent(shown)}/timeline?${q}`);
      if (mine !== generation) return;
      const list = body.querySelector(".c360-timeline");
      if (first && !page.entries.length) list.append(el("li", "c360-muted", t("no_history")));
      for (const entry of page.entries) list.append(item(entry));
      next = page.next;
      more.hidden = !next;
    } catch (e) {
      if (mine === generation) more.before(error(e.message));
    } finally {
      loading = false;
      more.disabled = false;
    }
  }

  function searchForm() {
    const form = el("form", "c360-search");
    form.setAttribute("role", "search");
    const input = document.createElement("input");
    input.type = "search";
    input.id = "c360-q";
    input.placeholder = t("search_hint");
    const label = el("label", "c360-sr", t("search"));
    label.htmlFor = input.id;
    const go = el("button", "", t("search_go"));
    go.type = "submit";
    const results = el("ul", "c360-results");
    form.append(label, input, go, results);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      results.replaceChildren();
      try {
        const got = await desk.api("GET", `/api/v1/customers?q=${encodeURIComponent(input.value)}`);
        if (!got.customers.length) results.append(el("li", "c360-muted", t("no_match")));
        for (const c of got.customers) {
          const ids = c.identities.map((i) => i.value).join(", ");
          const b = button(`${c.name || t("unnamed")} — ${ids}`, () => {
            results.replaceChildren();
            show(c.id);
          });
          const li = el("li");
          li.append(b);
          if (supervisor() && shown && c.id !== shown && !body.querySelector(".c360-note")) {
            const name = c.name || c.id;
            const m = button(t("merge_here"), () => mergeInto(shown, c.id, li));
            m.setAttribute("aria-label", t("merge_here_label", { name }));
            li.append(m);
          }
          results.append(li);
        }
      } catch (e) {
        results.append(el("li", "c360-error", e.message));
      }
    });
    return form;
  }

  function supervisor() {
    return ["supervisor", "admin"].includes(desk.me.role);
  }

  async function mergeInto(survivor, other, where) {
    try {
      await desk.api("POST", `/api/v1/customers/${encodeURIComponent(survivor)}/merge`,
        { from: other });
      finder.querySelector(".c360-results").replaceChildren();
      await show(survivor);
    } catch (e) {
      where.append(error(e.message));
    }
  }

  function profile(c) {
    const box = el("section", "c360-profile");
    box.append(el("h2", "", c.name || t("unnamed")));
    const meta = el("p", "c360-muted");
    meta.textContent = [
      t("since", { date: when(c.created_at, true) }),
      c.language ? t("language", { lang: c.language }) : null,
      t("tier", { tier: c.tier }),
    ].filter(Boolean).join(" · ");
    box.append(meta);
    if (c.merged_into) {
      const note = el("p", "c360-note");
      note.append(t("merged_into", { name: c.merged_into.name || c.merged_into.id }), " ");
      note.append(button(t("open_survivor"), () => show(c.merged_into.id)));
      box.append(note);
    }
    return box;
  }

  function identities(c) {
    const box = section(t("identities"));
    const list = el("ul", "c360-identities");
    for (const i of c.identities) {
      const li = el("li");
      li.append(el("span", "c360-kind", t(`kind_${i.kind}`)), " ", el("span", "c360-value", i.value));
      list.append(li);
    }
    if (!c.identities.length) list.append(el("li", "c360-muted", t("no_identities")));
    box.append(list);
    return box;
  }

  function tagEditor(c) {
    const box = section(t("tags"));
    const list = el("ul", "c360-tags");
    list.setAttribute("aria-label", t("tags"));
    const status = el("p", "c360-error");
    status.setAttribute("role", "status");
    const draw = (tags) => {
      list.replaceChildren(...tags.map((tag) => {
        const li = el("li", "c360-tag");
        li.append(el("span", "", tag));
        if (!c.merged_into) {
          const x = button("×", () => change("DELETE", tag));
          x.setAttribute("aria-label", t("remove_tag", { tag }));
          li.append(x);
        }
        return li;
      }));
      if (!tags.length) list.append(el("li", "c360-muted", t("no_tags")));
    };
    const change = async (method, tag) => {
      status.textContent = "";
      try {
        const got = await desk.api(method, `/api/v1/customers/${encodeURIComponent(c.id)}/tags`,
          { tags: [tag] });
        draw(got.tags);
        const still = [...list.querySelectorAll("button")];
        if (method === "DELETE") (still[0] || input).focus(); // keep the keyboard's place
        return true;
      } catch (e) {
        status.textContent = e.message;
        return false;
      }
    };
    draw(c.tags);
    box.append(list);
    const input = document.createElement("input");
    if (!c.merged_into) {
      const form = el("form", "c360-add-tag");
      input.id = `c360-tag-${c.id}`;
      input.maxLength = 64;
      const label = el("label", "", t("add_tag"));
      label.htmlFor = input.id;
      const add = el("button", "", t("add"));
      add.type = "submit";
      form.append(label, input, add);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const tag = input.value.trim();
        if (tag && await change("POST", tag)) input.value = "";
        input.focus();
      });
      box.append(form);
    }
    box.append(status);
    return box;
  }

  function tickets(c) {
    const box = section(t("tickets"));
    const list = el("ul", "c360-tickets");
    for (const x of c.tickets) {
      const li = el("li");
      li.append(el("span", "c360-number", `#${x.number}`), " ", x.subject, " ",
        el("span", `c360-state c360-state-${x.status}`, t(`ticket_${x.status}`)));
      list.append(li);
    }
    if (!c.tickets.length) list.append(el("li", "c360-muted", t("no_tickets")));
    box.append(list);
    return box;
  }

  function crm(c, mine) {
    const box = section(t("crm"));
    box.classList.add("c360-crm");
    if (!c.crm.configured) {
      box.append(el("p", "c360-muted", t("crm_off")));
      return box;
    }
    const wait = el("p", "c360-muted", t("crm_loading"));
    box.append(wait);
    // Beside the 360, not in it: a slow CRM never delays the rest.
    desk.api("GET", `/api/v1/customers/${encodeURIComponent(c.id)}/crm`).then((got) => {
      if (mine !== generation) return;
      wait.remove();
      if (!got.ok) {
        box.append(el("p", "c360-error", t("crm_failed", { error: got.error })));
        return;
      }
      box.append(crmData(got.data));
    }, (e) => {
      if (mine === generation) wait.replaceWith(error(e.message));
    });
    return box;
  }

  function crmData(data) {
    const orders = data && Array.isArray(data.orders) ? data.orders : null;
    if (!orders) {
      const pre = el("pre", "c360-json", JSON.stringify(data, null, 2).slice(0, 4000));
      return pre;
    }
    const wrap = el("div");
    const facts = Object.entries(data).filter(([k, v]) => k !== "orders" && typeof v !== "object");
    if (facts.length) {
      const dl = el("dl", "c360-facts");
      for (const [k, v] of facts) dl.append(el("dt", "", k), el("dd", "", String(v)));
      wrap.append(dl);
    }
    const table = el("table", "c360-orders");
    table.append(el("caption", "", t("orders")));
    const head = el("tr");
    const cols = [...new Set(orders.flatMap((o) => Object.keys(o)))].slice(0, 5);
    for (const k of cols) head.append(el("th", "", k));
    table.append(head);
    for (const o of orders.slice(0, 20)) {
      const tr = el("tr");
      for (const k of cols) tr.append(el("td", "", o[k] === undefined ? "" : String(o[k])));
      table.append(tr);
    }
    if (!orders.length) wrap.append(el("p", "c360-muted", t("no_orders")));
    else wrap.append(table);
    return wrap;
  }

  function merges(c) {
    const box = section(t("merges"));
    const list = el("ul", "c360-merges");
    for (const m of c.merges) {
      const li = el("li");
      li.append(t("merge_line", { merged: m.merged.name || m.merged.id,
        survivor: m.survivor.name || m.survivor.id, by: m.by, at: when(m.at) }));
      if (m.undone_at) {
        li.append(" ", el("span", "c360-muted", t("undone", { by: m.undone_by, at: when(m.undone_at) })));
      } else if (supervisor()) {
        li.append(" ", button(t("undo"), async () => {
          try {
            await desk.api("POST", `/api/v1/customers/merges/${encodeURIComponent(m.id)}/undo`);
            show(c.id);
          } catch (e) {
            li.append(error(e.message));
          }
        }));
      }
      list.append(li);
    }
    if (c.merges.length) box.append(list);
    if (supervisor() && !c.merged_into) {
      const form = el("form", "c360-merge");
      const input = document.createElement("input");
      input.id = `c360-merge-${c.id}`;
      const label = el("label", "", t("merge_from"));
      label.htmlFor = input.id;
      const go = el("button", "", t("merge"));
      go.type = "submit";
      form.append(label, input, go);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        mergeInto(c.id, input.value.trim(), form);
      });
      box.append(form);
    }
    if (!box.querySelector("ul, form")) return document.createDocumentFragment();
    return box;
  }

  function item(entry) {
    const li = el("li", `c360-entry c360-${entry.kind}`);
    li.dataset.id = entry.id;
    const channel = entry.kind === "ticket" ? "ticket" : entry.channel;
    const icon = el("span", "c360-icon", ICONS[channel] || "•");
    icon.setAttribute("aria-hidden", "true");
    const head = el("span", "c360-head");
    head.append(icon, el("span", "c360-channel", t(`channel_${channel}`)), " ",
      el("time", "c360-when", when(entry.at)));
    head.querySelector("time").dateTime = entry.at;
    if (entry.kind === "ticket") {
      li.append(head, el("span", "c360-line",
        `#${entry.number} ${entry.subject} — ${t(`ticket_${entry.status}`)}`));
      return li;
    }
    if (entry.kind === "message") {
      li.append(head, el("span", "c360-line", entry.message.subject || entry.message.text));
      return li;
    }
    const facts = [
      entry.queue && t("queue", { queue: entry.queue }),
      entry.agent && t("agent", { agent: entry.agent.name || entry.agent.id }),
      entry.seconds != null && t("duration", { time: duration(entry.seconds) }),
      t(`state_${entry.state}`),
    ].filter(Boolean).join(" · ");
    const details = el("details");
    const summary = el("summary");
    summary.append(head, el("span", "c360-line", [entry.subject, facts].filter(Boolean).join(" — ")));
    details.append(summary);
    details.addEventListener("toggle", () => {
      if (details.open && !details.dataset.built) {
        details.dataset.built = "true";
        details.append(...contactDetails(entry));
      }
    });
    li.append(details);
    return li;
  }

  function contactDetails(entry) {
    const parts = [];
    if (entry.ivr.length) {
      const path = el("ol", "c360-ivr");
      path.setAttribute("aria-label", t("ivr_path"));
      for (const s of entry.ivr) {
        const bits = [`${s.flow}: ${s.step}`];
        if (s.keys) bits.push(t("pressed", { keys: s.keys }));
        if (s.heard) bits.push(t("said", { text: s.heard }));
        if (s.outcome) bits.push(`→ ${s.outcome}`);
        path.append(el("li", "", bits.join(" ")));
      }
      parts.push(el("h4", "", t("ivr_path")), path);
    }
    for (const r of entry.recordings) {
      const fig = el("figure", "c360-recording");
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none"; // a thousand entries must not fetch a thousand files
      audio.src = r.url;
      audio.setAttribute("aria-label", t(`recording_${r.kind}`, { at: when(r.at) }));
      fig.append(el("figcaption", "", t(`recording_${r.kind}`, { at: when(r.at) })), audio);
      parts.push(fig);
    }
    for (const tr of entry.transcripts) {
      const d = el("details", "c360-transcript");
      d.append(el("summary", "", t("transcript")), el("p", "", tr.text || t("empty_transcript")));
      parts.push(d);
    }
    if (entry.messages.length) {
      const list = el("ol", "c360-messages");
      if (entry.messages_total > entry.messages.length) {
        parts.push(el("p", "c360-muted", t("older_messages",
          { n: entry.messages_total - entry.messages.length })));
      }
      for (const m of entry.messages) {
        const li = el("li", `c360-msg c360-${m.direction}`);
        li.append(el("span", "c360-who", m.direction === "in" ? t("customer") : (m.author || t("agent_reply"))),
          " ", el("span", "", (m.subject ? `${m.subject}: ${m.text}` : m.text) + (m.truncated ? "…" : "")));
        list.append(li);
      }
      parts.push(list);
    }
    if (!parts.length) parts.push(el("p", "c360-muted", t("no_details")));
    return parts;
  }

  function section(title) {
    const box = el("section", "c360-section");
    box.append(el("h3", "", title));
    return box;
  }

  function when(iso, dateOnly = false) {
    const d = new Date(iso);
    return dateOnly ? d.toLocaleDateString(desk.me.language) : d.toLocaleString(desk.me.language);
  }
}

function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return `${m}:${s}`;
}

function error(text) {
  const p = el("p", "c360-error", text);
  p.setAttribute("role", "alert");
  return p;
}

function button(text, onClick) {
  const b = el("button", "", text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
