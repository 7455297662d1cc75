// Small DOM helpers any desk module may import (`import { el, button } from "../dom.js"`).

export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A button that never submits a form it happens to sit in.
export function button(cls, text) {
  const b = el("button", cls, text);
  b.type = "button";
  return b;
}
