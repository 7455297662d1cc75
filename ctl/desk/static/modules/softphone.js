// The browser softphone: JsSIP registered to the agent's WebRTC endpoint with the account
// GET /api/v1/me/phone hands this agent's session. While it is registered, routing rings
// it rather than the desk SIP phone (ctl/telephony/queueing.py); turning it off hands the
// calls back to the desk phone.
//
// The INVITE that rings the agent names the contact and offer (X-CTL-Contact,
// X-CTL-Offer): the toast's Accept (`phone:answer`) answers that call, and an answered
// call emits `phone:answered` {contact_id, offer_id}; `phone:ended` when it ends. Transfer
// goes through routing's REST API, not SIP REFER, so the contact's record follows it.
//
// One tab per browser registers (softphone/tabs.js); the others say the phone is in
// another tab and take over when that one closes. The ICE servers (STUN/TURN) come with
// the account and are re-read before time-limited TURN credentials run out.

import { phoneOwner } from "./softphone/tabs.js";

const VENDOR = "/desk/static/vendor/jssip.js";
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const OFF = "ctl.softphone.off";
const RETRY_MS = 15000;

export async function mount(desk) {
  const region = desk.region("phone");
  const t = (key, vars) => desk.t(`softphone.${key}`, vars);
  const ui = render(region, t);
  let ua = null;
  let call = null; // {session, contact, offer, started, timer, held, muted}
  let retry = 0;
  let iceServers = [];
  let iceTimer = 0;
  const owner = phoneOwner(desk.me.agent_id);
  const wanted = () => localStorage.getItem(OFF) !== "1";

  ui.enabled.checked = wanted();
  ui.enabled.addEventListener("change", () => {
    if (!ui.enabled.checked) {
      localStorage.setItem(OFF, "1");
      stop();
      return;
    }
    // The other tabs hear "on" only once this tab holds the phone or queues for it:
    // told first, one of them could take the lock before the tab the agent clicked in.
    claim(() => localStorage.setItem(OFF, "0"));
  });
  // The switch is one setting per browser: another tab flipped it.
  window.addEventListener("storage", (ev) => {
    if (ev.key !== OFF || ui.enabled.checked === wanted()) return;
    ui.enabled.checked = wanted();
    toggle();
  });

  function toggle() {
    if (ui.enabled.checked) claim();
    else stop();
  }

  // `decided` runs once this tab owns the phone or knows another tab has it.
  async function claim(decided = () => {}) {
    let told = false;
    const tell = () => told || (told = true, decided());
    const mine = await owner.acquire(() => {
      status("elsewhere", t("elsewhere"));
      tell();
    });
    if (!mine) return;
    tell();
    if (!wanted()) stop(); // turned off in another tab while this one waited
    else await start();
  }

  function status(state, text) {
    ui.reg.dataset.state = state;
    ui.reg.textContent = text;
    region.dataset.registration = state;
  }

  async function start() {
    let JsSIP;
    try {
      ({ default: JsSIP } = await import(VENDOR));
    } catch (e) {
      // The bundle is committed (npm run vendor); missing means a broken install.
      status("failed", t("no_library", { path: VENDOR }));
      console.error("softphone: cannot load JsSIP", e);
      return;
    }
    let account;
    try {
      account = await desk.api("GET", "/api/v1/me/phone");
    } catch (e) {
      status("failed", t("no_account", { error: e.message }));
      return;
    }
    if (!ui.enabled.checked || ua || !owner.owned) return;
    useIce(account);
    if (!account.ready) {
      // Asterisk is down: ask again later rather than let JsSIP knock on a closed port.
      status("unavailable", t("unavailable"));
      clearTimeout(retry);
      retry = setTimeout(start, RETRY_MS);
      return;
    }
    status("connecting", t("connecting"));
    const current = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(account.ws_url)],
      uri: account.sip_uri, password: account.password, realm: account.realm,
      display_name: account.display_name, register: true, session_timers: false,
    });
    ua = current;
    // A stopped UA still reports its last events: only the current one sets the status.
    const on = (type, fn) => current.on(type, (e) => ua === current && fn(e));
    on("registered", () => status("registered", t("registered", { extension: account.extension })));
    on("unregistered", () => status("unregistered", t("unregistered")));
    on("registrationFailed", (e) => status("failed", t("failed", { cause: e.cause })));
    on("disconnected", () => status("connecting", t("reconnecting")));
    on("newRTCSession", ({ session, originator, request }) => {
      if (originator !== "remote") return;
      if (call) {
        session.terminate({ status_code: 486 }); // one call at a time: busy
        return;
      }
      ringing(session, request);
    });
    current.start();
  }

  // TURN REST credentials expire (ice_refresh: half their lifetime): fetch fresh ones.
  function useIce(account) {
    iceServers = account.ice_servers || [];
    clearTimeout(iceTimer);
    if (!account.ice_refresh) return;
    iceTimer = setTimeout(async () => {
      try {
        useIce(await desk.api("GET", "/api/v1/me/phone"));
      } catch (e) {
        console.warn("softphone: could not refresh the ICE servers", e.message);
      }
    }, account.ice_refresh * 1000);
  }

  function stop() {
    clearTimeout(retry);
    clearTimeout(iceTimer);
    if (call) call.session.terminate();
    if (ua) {
      const old = ua;
      ua = null;
      old.stop(); // unregisters: routing rings the desk phone from now on
    }
    owner.letGo();
    status("off", t("off"));
  }

  function ringing(session, request) {
    call = {
      session, started: 0, timer: 0, held: false, muted: false,
      contact: request.getHeader("X-CTL-Contact") || "",
      offer: request.getHeader("X-CTL-Offer") || "",
    };
    const from = session.remote_identity;
    ui.peer.textContent = from.display_name
      ? t("peer_named", { name: from.display_name, number: from.uri.user })
      : from.uri.user;
    show("ringing");
    ui.answer.focus();
    session.on("accepted", () => {
      call.started = Date.now();
      call.timer = setInterval(tick, 1000);
      tick();
      show("talking");
      ui.hangup.focus();
      desk.emit("phone:answered", { contact_id: call.contact, offer_id: call.offer });
    });
    session.on("peerconnection", ({ peerconnection }) => attach(peerconnection));
    const ended = () => {
      if (!call || call.session !== session) return;
      clearInterval(call.timer);
      desk.emit("phone:ended", { contact_id: call.contact, offer_id: call.offer });
      call = null;
      ui.audio.srcObject = null;
      show("idle");
    };
    session.on("ended", ended);
    session.on("failed", ended);
  }

  function attach(pc) {
    pc.addEventListener("track", (ev) => {
      ui.audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      ui.audio.play().catch(() => {}); // autoplay refusals only mute the local speaker
    });
  }

  function answer() {
    if (!call || call.started || !call.session.isInProgress()) return;
    // Without ICE servers (asterisk.ice_servers) the browser offers its own addresses
    // only: enough on one network; remote agents behind NAT need STUN or TURN (README).
    call.session.answer({ mediaConstraints: { audio: true, video: false },
                          pcConfig: { iceServers } });
  }

  function tick() {
    if (!call || !call.started) return;
    const s = Math.floor((Date.now() - call.started) / 1000);
    const mm = String(Math.floor(s / 60)).padStart(2, "0");
    ui.timer.textContent = `${mm}:${String(s % 60).padStart(2, "0")}`;
    ui.timer.dataset.seconds = String(s);
  }

  function show(state) {
    ui.call.dataset.state = state;
    ui.call.hidden = state === "idle";
    ui.answer.hidden = ui.decline.hidden = state !== "ringing";
    for (const b of [ui.hangup, ui.hold, ui.mute, ui.keys, ui.transfer]) b.hidden = state !== "talking";
    if (state !== "talking") {
      ui.keypad.hidden = true;
      ui.transferForm.hidden = true;
      ui.timer.textContent = "";
      ui.hold.setAttribute("aria-pressed", "false");
      ui.mute.setAttribute("aria-pressed", "false");
    }
    ui.callState.textContent = state === "idle" ? "" : t(`state_${state}`);
    region.dataset.call = state;
  }

  ui.answer.addEventListener("click", answer);
  ui.decline.addEventListener("click", () => call && call.session.terminate({ status_code: 486 }));
  ui.hangup.addEventListener("click", () => call && call.session.terminate());
  ui.hold.addEventListener("click", () => {
    if (!call) return;
    call.held = !call.held;
    if (call.held) call.session.hold();
    else call.session.unhold();
    ui.hold.setAttribute("aria-pressed", String(call.held));
    ui.callState.textContent = t(call.held ? "state_held" : "state_talking");
  });
  ui.mute.addEventListener("click", () => {
    if (!call) return;
    call.muted = !call.muted;
    if (call.muted) call.session.mute({ audio: true });
    else call.session.unmute({ audio: true });
    ui.mute.setAttribute("aria-pressed", String(call.muted));
  });
  ui.keys.addEventListener("click", () => {
    ui.keypad.hidden = !ui.keypad.hidden;
    ui.keys.setAttribute("aria-expanded", String(!ui.keypad.hidden));
    if (!ui.keypad.hidden) ui.keypad.querySelector("button").focus();
  });
  ui.keypad.addEventListener("click", (ev) => {
    const key = ev.target.closest("button")?.dataset.key;
    if (key && call) call.session.sendDTMF(key, { transportType: "RFC2833" });
  });
  ui.transfer.addEventListener("click", () => {
    ui.transferForm.hidden = !ui.transferForm.hidden;
    ui.transfer.setAttribute("aria-expanded", String(!ui.transferForm.hidden));
    if (!ui.transferForm.hidden) ui.target.focus();
  });
  ui.transferForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!call || !call.contact) {
      ui.transferError.textContent = t("transfer_no_contact");
      return;
    }
    const target = ui.target.value.trim();
    if (!target) return;
    try {
      await desk.api("POST", `/api/v1/contacts/${encodeURIComponent(call.contact)}/transfer`,
                     { [ui.kind.value]: target });
      ui.transferError.textContent = "";
      ui.target.value = ""; // routing hangs this phone up as the call moves on
    } catch (e) {
      ui.transferError.textContent = t("transfer_failed", { error: e.message });
    }
  });
  region.addEventListener("keydown", (ev) => {
    if (!call || ui.keypad.hidden || !KEYS.includes(ev.key)) return;
    if (ev.target.tagName === "INPUT") return;
    call.session.sendDTMF(ev.key, { transportType: "RFC2833" });
  });
  // The offer toast's Accept on a voice offer: answer the call ringing for it.
  // In a tab without the phone, it asks the tab that has it.
  const answerFor = (offerId) => {
    if (call && (!call.offer || call.offer === offerId)) answer();
  };
  desk.on("phone:answer", ({ offer_id }) => {
    if (owner.owned) answerFor(offer_id);
    else owner.tell({ type: "answer", offer_id });
  });
  owner.listen((m) => owner.owned && m.type === "answer" && answerFor(m.offer_id));
  window.addEventListener("pagehide", () => ua && ua.stop());

  show("idle");
  // Not awaited: a tab may wait for the phone as long as another tab has it.
  if (ui.enabled.checked) claim();
  else status("off", t("off"));
}

function render(region, t) {
  const box = el("section", "softphone");
  const title = el("h2", "", t("title"));
  title.id = "softphone-title";
  box.setAttribute("aria-labelledby", title.id);
  const enabledLabel = el("label", "enable");
  const enabled = document.createElement("input");
  enabled.type = "checkbox";
  enabled.setAttribute("role", "switch");
  enabled.id = "softphone-enabled";
  enabledLabel.append(enabled, document.createTextNode(" " + t("use_browser")));
  const reg = el("p", "registration");
  reg.setAttribute("role", "status");

  const call = el("div", "call");
  call.hidden = true;
  const peer = el("p", "peer");
  const callState = el("p", "call-state");
  callState.setAttribute("role", "status");
  callState.setAttribute("aria-live", "assertive");
  const timer = el("p", "timer");
  timer.setAttribute("role", "timer");
  timer.setAttribute("aria-label", t("timer"));
  const actions = el("div", "actions");
  const answer = button("answer", t("answer"));
  const decline = button("decline", t("decline"));
  const hangup = button("hangup", t("hangup"));
  const hold = button("hold", t("hold"));
  hold.setAttribute("aria-pressed", "false");
  const mute = button("mute", t("mute"));
  mute.setAttribute("aria-pressed", "false");
  const keys = button("keys", t("keypad"));
  keys.setAttribute("aria-expanded", "false");
  keys.setAttribute("aria-controls", "softphone-keypad");
  const transfer = button("transfer", t("transfer"));
  transfer.setAttribute("aria-expanded", "false");
  transfer.setAttribute("aria-controls", "softphone-transfer");
  actions.append(answer, decline, hangup, hold, mute, keys, transfer);

  const keypad = el("div", "keypad");
  keypad.id = "softphone-keypad";
  keypad.hidden = true;
  keypad.setAttribute("role", "group");
  keypad.setAttribute("aria-label", t("keypad"));
  for (const k of KEYS) {
    const b = button("key", k);
    b.dataset.key = k;
    b.setAttribute("aria-label", t("key", { key: k }));
    keypad.append(b);
  }

  const transferForm = el("form", "transfer-form");
  transferForm.id = "softphone-transfer";
  transferForm.hidden = true;
  transferForm.setAttribute("aria-label", t("transfer"));
  const kindLabel = el("label", "", t("transfer_kind"));
  const kind = document.createElement("select");
  kind.id = "softphone-transfer-kind";
  kindLabel.htmlFor = kind.id;
  kind.append(new Option(t("transfer_queue"), "queue"), new Option(t("transfer_agent"), "agent"));
  const targetLabel = el("label", "", t("transfer_target"));
  const target = document.createElement("input");
  target.id = "softphone-transfer-target";
  target.autocomplete = "off";
  targetLabel.htmlFor = target.id;
  const go = el("button", "transfer-go", t("transfer_go"));
  go.type = "submit";
  const transferError = el("p", "error");
  transferError.setAttribute("role", "alert");
  transferForm.append(kindLabel, kind, targetLabel, target, go, transferError);

  const audio = document.createElement("audio");
  audio.autoplay = true;
  call.append(peer, callState, timer, actions, keypad, transferForm);
  box.append(title, enabledLabel, reg, call, audio);
  region.replaceChildren(box);
  return { enabled, reg, call, peer, callState, timer, answer, decline, hangup, hold, mute,
           keys, transfer, keypad, transferForm, kind, target, transferError, audio };
}

function button(cls, text) {
  const b = el("button", cls, text);
  b.type = "button";
  return b;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
