// The top bar: who is logged in, their state, the language and logging out. The state
// shown is always the server's: set from the websocket's hello at every (re)connect,
// from /api/v1/me and from `AgentChanged` pushes (another tab, a supervisor, missed
// offers all change it), and announced to the other modules as the desk event `state`.

import { button, el } from "../dom.js";

export function mount(desk) {
  const bar = desk.region("topbar");
  bar.replaceChildren();
  const name = el("span", "me", desk.t("shell.agent", { name: desk.me.display_name || desk.me.username }));
  const status = el("span", "conn");
  status.setAttribute("role", "status");

  const stateLabel = el("label", "state-label", desk.t("shell.state"));
  const state = document.createElement("select");
  state.id = "agent-state";
  stateLabel.htmlFor = state.id;
  const option = (value, text) => state.append(new Option(text, value));
  option("available", desk.t("shell.state_available"));
  option("away", desk.t("shell.state_away"));
  for (const r of desk.awayReasons) {
    option(`away:${r.code}`, desk.t("shell.state_away_reason", { reason: r.label }));
  }
  option("offline", desk.t("shell.state_offline"));
  let shown = "";
  state.addEventListener("change", async () => {
    const [value, reason = ""] = state.value.split(":");
    try {
      show(await desk.api("PUT", "/api/v1/me/state", { state: value, reason }));
      status.textContent = "";
    } catch (e) {
      state.value = shown;
      status.textContent = desk.t("shell.state_failed", { error: e.message });
    }
  });

  const langs = el("div", "languages");
  langs.setAttribute("role", "group");
  langs.setAttribute("aria-label", desk.t("shell.language"));
  for (const code of desk.languages) {
    const b = button("", desk.t(`shell.lang_${code}`));
    b.lang = code;
    b.setAttribute("aria-pressed", String(code === desk.me.language));
    b.addEventListener("click", async () => {
      await desk.api("PUT", "/api/v1/me/language", { language: code });
      location.reload(); // every module renders its strings once, at mount
    });
    langs.append(b);
  }

  const logout = button("logout", desk.t("shell.logout"));
  logout.addEventListener("click", () => desk.logout());

  // Wrap-up is routing's (available, with a contact being wrapped up): shown, not chosen.
  const wrapup = el("span", "wrapup", desk.t("shell.state_wrapup"));
  wrapup.hidden = true;

  bar.append(name, stateLabel, state, wrapup, status, langs, logout);

  function show(me) {
    const base = me.status === "wrapup" ? "available" : me.status;
    let value = base === "away" && me.reason ? `away:${me.reason}` : base;
    if (![...state.options].some((o) => o.value === value)) {
      // A reason the desk does not offer (routing's "missed", an older setting).
      const known = desk.t(`shell.reason_${me.reason}`);
      const label = known === `shell.reason_${me.reason}` ? me.reason : known;
      state.querySelector("option[data-extra]")?.remove();
      const extra = new Option(desk.t("shell.state_away_reason", { reason: label }), value);
      extra.dataset.extra = "true";
      state.add(extra, state.options[state.options.length - 1]);
    }
    state.value = shown = value;
    wrapup.hidden = me.status !== "wrapup";
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
  // Wrap-up starts and ends without an AgentChanged: read the status then.
  const reread = async () => {
    try {
      show(await desk.api("GET", "/api/v1/me"));
    } catch (e) {
      status.textContent = e.message;
    }
  };
  desk.on("WrapupStarted", reread);
  desk.on("Released", reread);
}
