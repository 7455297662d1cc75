// The "/" picker in any reply box of the conversations region: typing "/" and the start
// of a shortcut lists the matching quick replies; arrows move, Enter or Tab picks, Escape
// closes. The picked reply is rendered by the server (its variables filled for the
// open conversation) and replaces the typed "/shortcut" in that box; an `input` event
// then tells the box's owner its text changed.
import { el } from "./dom.js";

const TOKEN = /(?:^|\s)(\/[^\s/]*)$/;

export function attachPicker(desk, { replies, render, report }) {
  const t = (k, v) => desk.t(`assist.${k}`, v);
  const region = desk.region("conversations");
  const list = el("ul", { class: "assist-picker", role: "listbox", id: "assist-picker",
                          "aria-label": t("picker") });
  list.hidden = true;
  document.body.append(list);
  let box = null;
  let matches = [];
  let active = 0;

  const close = () => {
    list.hidden = true;
    matches = [];
    if (box) {
      box.removeAttribute("aria-activedescendant");
      box.setAttribute("aria-expanded", "false");
    }
  };

  const token = (area) => {
    const m = TOKEN.exec(area.value.slice(0, area.selectionStart));
    return m ? { text: m[1], start: area.selectionStart - m[1].length } : null;
  };

  const show = () => {
    list.replaceChildren(...matches.map((r, i) => el("li", {
      id: `assist-pick-${i}`, role: "option", "aria-selected": String(i === active),
      class: i === active ? "active" : "",
      onmousedown: (ev) => { ev.preventDefault(); pick(i); },
    }, el("b", { text: r.shortcut }), " ", el("span", { text: r.title }),
       el("small", { text: r.language }))));
    const rect = box.getBoundingClientRect();
    list.style.left = `${rect.left + window.scrollX}px`;
    list.style.top = `${rect.top + window.scrollY}px`;
    list.style.minWidth = `${Math.min(rect.width, 360)}px`;
    list.hidden = false;
    box.setAttribute("aria-controls", list.id);
    box.setAttribute("aria-expanded", "true");
    box.setAttribute("aria-activedescendant", `assist-pick-${active}`);
  };

  const pick = async (i) => {
    const area = box;
    const reply = matches[i];
    const at = area && token(area);
    close();
    if (!reply || !at) return;
    try {
      const text = await render(reply);
      const end = at.start + at.text.length;
      area.value = area.value.slice(0, at.start) + text + area.value.slice(end);
      const caret = at.start + text.length;
      area.setSelectionRange(caret, caret);
      area.dispatchEvent(new Event("input", { bubbles: true }));
      area.focus();
      report(t("inserted", { title: reply.title }));
    } catch (e) {
      report(e.message, true);
    }
  };

  region.addEventListener("input", (ev) => {
    if (!(ev.target instanceof HTMLTextAreaElement)) return;
    box = ev.target;
    const at = token(box);
    const wanted = at && at.text.toLowerCase();
    matches = wanted ? replies().filter((r) => r.shortcut.toLowerCase().startsWith(wanted)) : [];
    active = 0;
    if (matches.length) show();
    else close();
  });
  // Capture: the picker's keys must not reach the box's own Enter-to-send handler.
  region.addEventListener("keydown", (ev) => {
    if (list.hidden || ev.target !== box || ev.isComposing) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      active = (active + (ev.key === "ArrowDown" ? 1 : matches.length - 1)) % matches.length;
      show();
    } else if (ev.key === "Enter" || ev.key === "Tab") {
      pick(active);
    } else if (ev.key === "Escape") {
      close();
    } else {
      return;
    }
    ev.preventDefault();
    ev.stopPropagation();
  }, true);
  region.addEventListener("focusout", (ev) => {
    if (ev.target === box) close();
  });
  return { close };
}
