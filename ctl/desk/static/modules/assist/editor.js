// The knowledge editor, a modal dialog: one's own quick replies and, for supervisors and
// admins, the team's replies and the articles (drafts included). The server decides who
// may change what; the dialog only leaves out what the role cannot do.
import { el } from "./dom.js";

const EDITORS = new Set(["supervisor", "admin"]);
let dialog = null;

export function openEditor(desk, { changed }) {
  if (!dialog) dialog = build(desk, changed);
  dialog.showModal();
  dialog.reload();
}

function build(desk, changed) {
  const t = (k, v) => desk.t(`assist.${k}`, v);
  const editor = EDITORS.has(desk.me.role);
  const error = el("p", { class: "assist-error", role: "alert" });
  const fail = (e) => { error.textContent = e.message; };
  const ok = () => { error.textContent = ""; };

  // --- replies -------------------------------------------------------------------------
  const replyList = el("ul", { class: "editor-list", "aria-label": t("replies") });
  // Option labels: assist's own words, the shell's language names, else the value.
  const label = (o) => [`assist.${o}`, `shell.lang_${o}`].map((k) => [k, desk.t(k)])
    .find(([k, v]) => v !== k)?.[1] ?? o;
  const rf = fields(t, label, "reply", [
    ["scope", "select", editor ? ["personal", "team"] : ["personal"]],
    ["title", "input"], ["shortcut", "input"], ["language", "select", desk.languages],
    ["body", "textarea"]]);
  const variables = el("p", { class: "variables" });
  let reply = null;
  const editReply = (r) => {
    reply = r;
    rf.set(r || { scope: "personal", title: "", shortcut: "/", language: desk.me.language, body: "" });
    rf.inputs.scope.disabled = Boolean(r);
    rf.form.querySelector(".delete").hidden = !r;
    rf.inputs.title.focus();
  };
  rf.form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = rf.get();
    try {
      if (reply) {
        delete body.scope;
        editReply(await desk.api("PATCH", `/api/v1/quick-replies/${reply.id}`, body));
      } else {
        editReply(await desk.api("POST", "/api/v1/quick-replies", body));
      }
      ok();
      await loadReplies();
      changed();
    } catch (e) { fail(e); }
  });
  rf.form.querySelector(".delete").addEventListener("click", async () => {
    try {
      await desk.api("DELETE", `/api/v1/quick-replies/${reply.id}`);
      ok();
      editReply(null);
      await loadReplies();
      changed();
    } catch (e) { fail(e); }
  });
  async function loadReplies() {
    const all = (await desk.api("GET", "/api/v1/quick-replies")).replies;
    const mine = all.filter((r) => r.scope === "personal" || editor);
    replyList.replaceChildren(...mine.map((r) => el("li", {},
      el("button", { type: "button", class: "edit-reply", onclick: () => editReply(r),
                     "aria-label": t("edit_named", { name: `${r.shortcut} ${r.title}` }) },
         `${r.shortcut} · ${r.title} (${r.language}, ${t(r.scope)})`))));
  }
  const repliesSection = el("section", { class: "editor-replies" },
    el("h3", { text: t("edit_replies") }),
    el("button", { type: "button", class: "new-reply", text: t("new_reply"),
                   onclick: () => editReply(null) }),
    replyList, rf.form, variables);

  // --- articles (supervisors and admins) ------------------------------------------------
  let articlesSection = null;
  let loadArticles = async () => {};
  if (editor) {
    const list = el("ul", { class: "editor-list", "aria-label": t("articles") });
    const q = el("input", { type: "search", id: "editor-article-q", autocomplete: "off" });
    const af = fields(t, label, "article", [
      ["title", "input"], ["language", "select", desk.languages],
      ["status", "select", ["draft", "published"]], ["format", "select", ["markdown", "text"]],
      ["tags", "input"], ["body", "textarea"]]);
    let current = null;
    const editArticle = (a) => {
      current = a;
      af.set(a ? { ...a, tags: a.tags.join(", ") }
        : { title: "", language: desk.me.language, status: "draft", format: "markdown", tags: "", body: "" });
      af.form.querySelector(".delete").hidden = !a;
      af.inputs.title.focus();
    };
    af.form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = af.get();
      body.tags = body.tags.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
      try {
        editArticle(current
          ? await desk.api("PATCH", `/api/v1/knowledge/articles/${current.id}`, { ...body, version: current.version })
          : await desk.api("POST", "/api/v1/knowledge/articles", body));
        ok();
        await loadArticles();
      } catch (e) { fail(e); }
    });
    af.form.querySelector(".delete").addEventListener("click", async () => {
      try {
        await desk.api("DELETE", `/api/v1/knowledge/articles/${current.id}`);
        ok();
        editArticle(null);
        await loadArticles();
      } catch (e) { fail(e); }
    });
    loadArticles = async () => {
      const found = (await desk.api("GET", "/api/v1/knowledge/articles?drafts=1&limit=200&q="
                                    + encodeURIComponent(q.value.trim()))).articles;
      list.replaceChildren(...found.map((a) => el("li", {},
        el("button", { type: "button", class: "edit-article", onclick: () => editArticle(a),
                       "aria-label": t("edit_named", { name: a.title }) },
           `${a.title} (${a.language}, ${t(a.status)})`))));
    };
    q.addEventListener("input", () => loadArticles().catch(fail));
    articlesSection = el("section", { class: "editor-articles" },
      el("h3", { text: t("articles") }),
      el("label", { for: q.id, text: t("search") }), q,
      el("button", { type: "button", class: "new-article", text: t("new_article"),
                     onclick: () => editArticle(null) }),
      list, af.form);
    editArticle(null);
  }

  const heading = el("h2", { id: "assist-editor-title", text: t("manage") });
  const close = el("button", { type: "button", class: "close", text: t("close"),
                               onclick: () => box.close() });
  const box = el("dialog", { class: "assist-editor", "aria-labelledby": heading.id },
                 heading, error, el("div", { class: "editor-columns" }, repliesSection,
                                    articlesSection), close);
  box.reload = async () => {
    try {
      ok();
      const v = (await desk.api("GET", "/api/v1/quick-replies/variables")).variables;
      variables.textContent = t("variables_help", { list: Object.entries(v)
        .flatMap(([g, f]) => Object.keys(f).map((k) => `{{ ${g}.${k} }}`)).join("  ") });
      await loadReplies();
      await loadArticles();
    } catch (e) { fail(e); }
  };
  editReply(null);
  document.body.append(box);
  return box;
}

// A form of labelled fields: [name, "input"|"textarea"|"select", options?]; set(values)
// fills it, get() reads it.
function fields(t, label, prefix, spec) {
  const inputs = {};
  const form = el("form", { class: `editor-form ${prefix}-form`, "aria-label": t(`${prefix}_form`) });
  for (const [name, kind, options] of spec) {
    const id = `${prefix}-${name}`;
    const input = el(kind, { id, name, rows: kind === "textarea" ? 6 : undefined });
    for (const o of options || []) input.append(new Option(label(o), o));
    inputs[name] = input;
    form.append(el("label", { for: id, text: t(`field_${name}`) }), input);
  }
  form.append(el("div", { class: "actions" },
    el("button", { type: "submit", class: "save", text: t("save") }),
    el("button", { type: "button", class: "delete", text: t("delete") })));
  return {
    form, inputs,
    set(values) { for (const [k, input] of Object.entries(inputs)) input.value = values[k] ?? ""; },
    get() { return Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value])); },
  };
}
