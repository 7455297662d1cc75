// Elements for the assist module: el("button", {class: "x", text: "Go"}, child...).
// Text goes in as text nodes, never as HTML: article bodies and replies are user input.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// The reply list in the agent's own language first, then by shortcut.
export function byLanguage(language) {
  return (a, b) => (a.language !== language) - (b.language !== language)
    || a.shortcut.localeCompare(b.shortcut);
}

// An article's body: markdown's **bold** and `code` become elements, everything else
// stays text (line breaks kept by CSS). Built from nodes, so no markup of the author's
// ever runs as HTML.
export function articleBody(a) {
  const body = el("div", { class: "body" });
  if (a.format !== "markdown") {
    body.textContent = a.body;
    return body;
  }
  for (const part of a.body.split(/(\*\*[^*\n]+\*\*|`[^`\n]+`)/)) {
    if (/^\*\*[^*\n]+\*\*$/.test(part)) body.append(el("strong", { text: part.slice(2, -2) }));
    else if (/^`[^`\n]+`$/.test(part)) body.append(el("code", { text: part.slice(1, -1) }));
    else body.append(part);
  }
  return body;
}
