// Ending a conversation: disposition and notes (kept in the contact's history), Complete
// (the conversation ends; wrap-up follows if the queue has it) and Wrap-up done, and
// "Create ticket" from the conversation (the ticket is linked to the contact).
import { el } from "./dom.js";
import { lastInbound } from "./log.js";

const CODES = ["resolved", "follow_up", "escalated", "no_action"];

export function wrapup(desk, conv, changed) {
  const t = (k, v) => desk.t(`conversations.${k}`, v);
  const id = conv.info.contact_id;
  const held = conv.wrap || (conv.wrap = { ...conv.info.disposition });
  const box = el("section", { class: "wrapup", "aria-label": t("wrapup") });
  const status = el("p", { class: "note", role: "status" });

  const list = el("datalist", { id: `codes-${id}` },
    ...CODES.map((c) => el("option", { value: c, text: t(`code_${c}`) })));
  const code = el("input", { id: `disposition-${id}`, list: list.id, value: held.disposition || "",
                             maxlength: 64, oninput: () => { held.disposition = code.value; } });
  const notes = el("textarea", { id: `notes-${id}`, rows: 2, maxlength: 4000,
                                 oninput: () => { held.notes = notes.value; } });
  notes.value = held.notes || "";
  const fields = el("div", { class: "fields" },
    el("label", { for: code.id, text: t("disposition") }), code, list,
    el("label", { for: notes.id, text: t("notes") }), notes);

  const act = (label, cls, fn) => el("button", { type: "button", class: cls, text: t(label),
    onclick: async (ev) => {
      const button = ev.currentTarget;
      button.disabled = true;
      status.textContent = "";
      try {
        await fn();
      } catch (e) {
        status.textContent = e.message;
      } finally {
        button.disabled = false;
      }
    } });
  const save = async () => {
    const data = { disposition: code.value.trim(), notes: notes.value.trim() };
    const saved = conv.info.disposition || {};
    if ((data.disposition || data.notes) &&
        (data.disposition !== (saved.disposition || "") || data.notes !== (saved.notes || ""))) {
      conv.info.disposition = await desk.api("POST", `/api/v1/contacts/${id}/disposition`, data);
    }
  };
  const finish = (action) => async () => {
    await save();
    await desk.api("POST", `/api/v1/contacts/${id}/${action}`);
    await changed(conv);
  };

  const buttons = el("div", { class: "actions" });
  const state = conv.info.state;
  if (state === "assigned" && conv.info.channel !== "voice") { // a call ends by hanging up
    buttons.append(act("complete", "complete", finish("complete")));
  }
  if (state === "wrapup") buttons.append(act("wrapup_done", "wrapup-done", finish("wrapup-done")));
  buttons.append(act("save", "save", async () => {
    await save();
    status.textContent = t("saved");
  }));
  const ticket = ticketForm(desk, conv, status);
  buttons.append(el("button", { type: "button", class: "new-ticket", text: t("create_ticket"),
                                "aria-expanded": "false", "aria-controls": ticket.id,
                                onclick: (ev) => {
                                  ticket.hidden = !ticket.hidden;
                                  ev.currentTarget.setAttribute("aria-expanded", String(!ticket.hidden));
                                  if (!ticket.hidden) ticket.querySelector("input").focus();
                                } }));
  if (conv.ticket) status.textContent = t("ticket_created", { number: conv.ticket });
  box.append(el("h3", { text: state === "wrapup" ? t("in_wrapup") : t("wrapup") }), fields, buttons,
             ticket, status);
  return box;
}

function ticketForm(desk, conv, status) {
  const t = (k, v) => desk.t(`conversations.${k}`, v);
  const id = conv.info.contact_id;
  const last = lastInbound(conv);
  const subject = el("input", { id: `ticket-subject-${id}`, required: true, maxlength: 200,
    value: conv.info.subject || (last ? last.text.split("\n")[0].slice(0, 120) : "") });
  const priority = el("select", { id: `ticket-priority-${id}` },
    ...["low", "normal", "high", "urgent"].map((p) => el("option", { value: p, text: t(`priority_${p}`),
                                                                     selected: p === "normal" })));
  const description = el("textarea", { id: `ticket-description-${id}`, rows: 3 });
  description.value = last ? last.text : "";
  const form = el("form", { id: `ticket-${id}`, class: "ticket", hidden: true, "aria-label": t("create_ticket") },
    el("label", { for: subject.id, text: t("ticket_subject") }), subject,
    el("label", { for: priority.id, text: t("ticket_priority") }), priority,
    el("label", { for: description.id, text: t("ticket_description") }), description,
    el("button", { type: "submit", text: t("ticket_create") }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const made = await desk.api("POST", "/api/v1/tickets", {
        subject: subject.value, description: description.value, priority: priority.value,
        contact_id: id, customer_id: conv.info.customer_id, channel: conv.info.channel,
        source: "desk",
      });
      conv.ticket = made.number;
      form.hidden = true;
      status.textContent = t("ticket_created", { number: made.number });
      desk.emit("ticket:created", { ticket_id: made.id, number: made.number, contact_id: id });
    } catch (e) {
      status.textContent = e.message;
    }
  });
  return form;
}
