// The reply box of one conversation. Chat-like channels send on Enter (Shift+Enter is a
// new line); email has a subject and a body that starts with the customer's last
// message quoted, and sends with Ctrl+Enter or the button. The draft lives on the
// conversation, so switching tabs keeps it.
import { el } from "./dom.js";
import { lastInbound, quote } from "./log.js";

// Channels whose reply path carries files (the others' senders take text only).
const FILES = new Set(["chat", "email", "api"]);
const TYPING = new Set(["chat"]); // channels that show the agent typing
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;

export function composer(desk, conv, send) {
  const channel = conv.info.channel;
  const t = (k, v) => desk.t(`conversations.${k}`, v);
  const email = channel === "email";
  let draft = conv.draft || initialDraft(desk, conv, email);
  if (conv.loaded) conv.draft = draft; // before its messages are read there is nothing to quote
  const id = conv.info.contact_id;

  const form = el("form", { class: `composer ${email ? "email" : "chat"}`, "aria-label": t("reply") });
  const error = el("p", { class: "error", role: "alert" });
  const body = el("textarea", { id: `reply-${id}`, name: "text", rows: email ? 8 : 2,
                                "aria-label": t("reply_text"), placeholder: t(email ? "email_placeholder" : "chat_placeholder") });
  body.value = draft.text;
  let subject = null;
  if (email) {
    subject = el("input", { id: `subject-${id}`, name: "subject", value: draft.subject });
    form.append(el("label", { for: subject.id, text: t("subject") }), subject);
    subject.addEventListener("input", () => {
      draft.subject = subject.value;
      conv.draft = draft;
    });
  }
  form.append(body);

  const files = el("input", { type: "file", multiple: true, id: `files-${id}`, class: "files-input" });
  const chosen = el("span", { class: "chosen", "aria-live": "polite" });
  const actions = el("div", { class: "actions" });
  if (FILES.has(channel)) {
    files.addEventListener("change", () => {
      chosen.textContent = [...files.files].map((f) => f.name).join(", ");
    });
    actions.append(el("label", { for: files.id, class: "attach", text: t("attach") }), files, chosen);
  }
  const button = el("button", { type: "submit", class: "send", text: t("send") });
  actions.append(button);
  form.append(actions, error);

  let typingSent = 0;
  let idle = null;
  const typing = (on) => {
    if (!TYPING.has(channel)) return;
    clearTimeout(idle);
    const now = Date.now();
    if (on && now - typingSent < TYPING_REPEAT_MS) {
      idle = setTimeout(() => typing(false), TYPING_IDLE_MS);
      return;
    }
    typingSent = on ? now : 0;
    if (on) idle = setTimeout(() => typing(false), TYPING_IDLE_MS);
    desk.api("POST", `/api/v1/contacts/${id}/typing`, { on }).catch(() => {});
  };

  body.addEventListener("input", () => {
    draft.text = body.value;
    conv.draft = draft;
    if (body.value.trim()) typing(true);
  });
  body.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || ev.isComposing) return; // an IME's Enter picks a candidate
    if (email ? (ev.ctrlKey || ev.metaKey) : !(ev.shiftKey || ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  if (email) {
    // Top-posting: the caret starts above the quote.
    body.addEventListener("focus", () => {
      if (body.value === draft.quoted) body.setSelectionRange(0, 0);
    }, { once: true });
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (button.disabled) return; // still sending the last one
    const text = body.value;
    const picked = [...files.files];
    if (!text.trim() && !picked.length) {
      error.textContent = t("empty");
      return;
    }
    error.textContent = "";
    button.disabled = true;
    if (TYPING.has(channel) && typingSent) typing(false);
    // Cleared at once (the pending row shows the text); put back if the server refused it.
    const kept = { ...draft };
    draft = conv.draft = { text: "", subject: subject ? subject.value : "", quoted: "" };
    body.value = "";
    try {
      await send(conv, { text, subject: subject ? subject.value : undefined, files: picked });
      files.value = "";
      chosen.textContent = "";
    } catch (e) {
      error.textContent = e.message;
      if (e.status !== 502 && !body.value) { // 502: stored as failed, its reason in the log
        draft = conv.draft = kept;
        body.value = kept.text;
      }
    } finally {
      button.disabled = false;
      body.focus();
    }
  });
  // Text from elsewhere (a quick reply, an article) goes in at the caret.
  const insert = (text) => {
    const at = body.selectionStart ?? body.value.length;
    body.setRangeText(text, at, body.selectionEnd ?? at, "end");
    draft.text = body.value;
    conv.draft = draft;
    body.focus();
  };
  return { form, focus: () => body.focus(), insert };
}

function initialDraft(desk, conv, email) {
  if (!email) return { text: "" };
  const subject = conv.info.subject || "";
  const last = lastInbound(conv);
  const quoted = last ? `\n\n${quote(desk, conv, last)}` : "";
  return {
    subject: !subject || /^re:/i.test(subject) ? subject : `Re: ${subject}`,
    text: quoted,
    quoted,
  };
}
