// The live offer toast: one per pending offer, with who is waiting, in which queue, a
// countdown to the offer's expiry, Accept and Decline. Focus moves to it; Enter accepts,
// Escape declines. It goes when the offer ends however it ends (taken, declined, timed
// out, withdrawn: the engine's `OfferEnded` or `Assigned` push), and at each (re)connect
// the toasts are set to the offers the server says are pending.
//
// A voice offer is accepted by answering the phone (routing accepts when the agent's leg
// answers): its Accept emits `phone:answer` {offer_id, contact_id} for the softphone, and
// `offer:accepted` follows the `Assigned` push. Other channels accept through the API.

import { button, el } from "../dom.js";

const TICK_MS = 250;

export function mount(desk) {
  const stack = document.createElement("div");
  stack.className = "offers";
  stack.setAttribute("role", "region");
  stack.setAttribute("aria-label", desk.t("shell.offers"));
  document.body.append(stack);
  const shown = new Map(); // offer id -> {offer, node, timer, returnFocus}
  const pageTitle = document.title;
  // The tab's title counts pending offers: an agent in another tab or window sees them.
  const retitle = () => {
    document.title = shown.size
      ? `(${shown.size}) ${desk.t("shell.offers")} · ${pageTitle}` : pageTitle;
  };

  desk.on("offer", ({ offer }) => {
    show(offer, Date.now() + (offer.timeout ?? offer.expires_at - Date.now() / 1000) * 1000);
  });
  desk.on("OfferEnded", ({ offer_id }) => drop(offer_id));
  desk.on("Assigned", ({ offer_id, contact_id }) => {
    const entry = shown.get(offer_id);
    if (entry && entry.offer.channel === "voice") {
      desk.emit("offer:accepted", { offer_id, contact_id, channel: "voice" });
    }
    drop(offer_id);
  });
  desk.on("ws:open", (hello) => {
    // Pushes are not replayed: what is pending now is what the server says.
    const pending = new Map((hello.offers || []).map((o) => [o.id, o]));
    for (const id of [...shown.keys()]) if (!pending.has(id)) drop(id);
    for (const o of pending.values()) if (!shown.has(o.id)) show(o, o.expires_at * 1000);
  });

  function show(offer, deadline) {
    if (shown.has(offer.id)) return;
    const node = document.createElement("div");
    node.className = "toast";
    node.dataset.offer = offer.id;
    node.dataset.channel = offer.channel;
    node.setAttribute("role", "alertdialog");
    const titleId = `offer-${offer.id}-title`;
    node.setAttribute("aria-labelledby", titleId);
    const channel = label(`shell.channel_${offer.channel}`, offer.channel);
    const title = el("strong", "title", desk.t("shell.offer_title", { channel }));
    title.id = titleId;
    const queue = el("span", "queue", desk.t("shell.offer_queue", { queue: offer.queue }));
    const customer = el("span", "customer", desk.t("shell.offer_customer_unknown"));
    queue.id = `offer-${offer.id}-queue`;
    customer.id = `offer-${offer.id}-customer`;
    node.setAttribute("aria-describedby", `${queue.id} ${customer.id}`);
    const left = el("span", "countdown");
    left.setAttribute("role", "timer");
    const accept = button("accept", desk.t("shell.offer_accept"));
    const decline = button("decline", desk.t("shell.offer_decline"));
    const actions = el("div", "actions");
    actions.append(accept, decline);
    node.append(title, queue, customer, left, actions);
    if (offer.channel === "voice") node.append(el("span", "hint", desk.t("shell.offer_voice_hint")));

    const entry = { offer, node, returnFocus: document.activeElement, timer: 0 };
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      left.textContent = desk.t("shell.offer_expires", { seconds });
      if (seconds <= 0) drop(offer.id); // the engine's timeout ends it; do not wait for it
    };
    entry.timer = setInterval(tick, TICK_MS);
    shown.set(offer.id, entry);
    retitle();
    tick();
    if (!shown.has(offer.id)) return;

    accept.addEventListener("click", () => answer(entry, "accept"));
    decline.addEventListener("click", () => answer(entry, "decline"));
    node.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        answer(entry, "decline");
      } else if (ev.key === "Enter" && ev.target.tagName !== "BUTTON") {
        ev.preventDefault();
        answer(entry, "accept");
      }
    });
    stack.append(node);
    accept.focus();
    desk.api("GET", `/api/v1/offers/${encodeURIComponent(offer.id)}`
                      + `?contact=${encodeURIComponent(offer.contact_id)}`).then((full) => {
      const who = full.customer && (full.customer.name || (full.customer.identity || {}).value);
      if (who) customer.textContent = desk.t("shell.offer_customer", { customer: who });
    }, () => {}); // gone meanwhile: its OfferEnded removes the toast
  }

  async function answer(entry, action) {
    const { offer, node } = entry;
    if (node.dataset.busy) return;
    node.dataset.busy = "true";
    if (action === "accept" && offer.channel === "voice") {
      desk.emit("phone:answer", { offer_id: offer.id, contact_id: offer.contact_id });
      return; // the Assigned push (the phone answered) removes the toast
    }
    try {
      await desk.api("POST", `/api/v1/offers/${encodeURIComponent(offer.id)}/${action}`);
      drop(offer.id);
      if (action === "accept") {
        desk.emit("offer:accepted", { offer_id: offer.id, contact_id: offer.contact_id,
                                      channel: offer.channel });
      }
    } catch (e) {
      delete node.dataset.busy;
      node.querySelector(".error")?.remove();
      const err = el("span", "error", e.message);
      err.setAttribute("role", "alert");
      node.append(err);
      if (e.status === 404) setTimeout(() => drop(offer.id), 3000);
    }
  }

  function drop(id) {
    const entry = shown.get(id);
    if (!entry) return;
    shown.delete(id);
    retitle();
    clearInterval(entry.timer);
    const hadFocus = entry.node.contains(document.activeElement);
    entry.node.remove();
    if (hadFocus) {
      const next = stack.querySelector(".toast .accept");
      const back = entry.returnFocus;
      (next || (back && back.isConnected ? back : document.body)).focus?.();
    }
  }

  function label(key, fallback) {
    const text = desk.t(key);
    return text === key ? fallback : text;
  }
}
