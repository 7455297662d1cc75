// The top bar: who is logged in, their state, the language and logging out. The state
// shown is always the server's: set from /api/v1/me at every (re)connect and from the
// `AgentChanged` pushes (another tab, a supervisor, missed offers all change it).

export function mount(desk) {
  const bar = desk.region("topbar");
  bar.innerHTML = "";
  const name = el("span", "me", desk.t("shell.agent", { name: desk.me.display_name || desk.me.username }));
  const status = el("span", "conn");
  status.setAttribute("role", "status");

  const stateLabel = el("label", "state-label", desk.t("shell.state"));
  const state = document.createElement("select");
  state.id = "agent-state";
  stateLabel.htmlFor = state.id;
  for (const s of ["available", "away", "offline"]) {
    state.append(new Option(desk.t(`shell.state_${s}`), s));
  }
  state.addEventListener("change", async () => {
    try {
      show(await desk.api("PUT", "/api/v1/me/state", { state: state.value }));
    } catch (e) {
      status.textContent = e.message;
    }
  });

  const langs = el("nav", "languages");
  langs.setAttribute("aria-label", desk.t("shell.language"));
  for (const code of desk.languages) {
    const a = el("a", "", desk.t(`shell.lang_${code}`));
    a.href = `/desk/?lang=${encodeURIComponent(code)}`;
    a.lang = code;
    if (code === desk.me.language) a.setAttribute("aria-current", "true");
    langs.append(a);
  }

  const logout = el("button", "logout", desk.t("shell.logout"));
  logout.type = "button";
  logout.addEventListener("click", async () => {
    try {
      await desk.api("POST", "/api/v1/logout");
    } finally {
      location.assign("/desk/login");
    }
  });

  bar.append(name, stateLabel, state, status, langs, logout);

  function show(me) {
    const value = me.status === "wrapup" ? "available" : me.status;
    state.value = value;
    bar.dataset.state = me.status;
    desk.emit("state", { status: me.status, reason: me.reason || "" });
  }

  desk.on("ws:open", async (hello) => {
    status.textContent = "";
    show(hello);
  });
  desk.on("ws:close", () => {
    status.textContent = desk.t("shell.connection_lost");
  });
  desk.on("AgentChanged", (msg) => show(msg));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
