/* ctl web chat widget. Embed with:
 *   <script src="https://YOUR-CTL/chat/widget.js" async></script>
 * Protocol (JSON over /chat/ws): see README "Web chat". The widget keeps its token, the
 * contact and the last seq it showed in localStorage; after a reconnect it says them in
 * "hello" and the server sends exactly what was missed. Unacknowledged messages are sent
 * again with the same cid; the server stores each cid once. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script ? script.src : "/chat/widget.js", location.href);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/chat/ws";
  var httpBase = base.origin;
  var KEY = "ctl-chat:" + base.host;
  var state = JSON.parse(localStorage.getItem(KEY) || "{}");  // token, contact, last
  var pending = {};  // cid -> text, until acknowledged
  var shown = {};  // contact:seq -> true
  var ws = null, backoff = 250, typingSent = false, typingTimer = null, closedByUs = false;

  function save() { localStorage.setItem(KEY, JSON.stringify(state)); }

  var host = document.createElement("div");
  host.id = "ctl-chat";
  document.body.appendChild(host);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  root.innerHTML =
    '<style>' +
    ':host{all:initial}.box{position:fixed;right:16px;bottom:16px;width:320px;font:14px sans-serif;' +
    'background:#fff;border:1px solid #ccc;border-radius:8px;box-shadow:0 2px 12px #0003;display:flex;' +
    'flex-direction:column;max-height:480px}.head{background:#2d6cdf;color:#fff;padding:8px 12px;' +
    'border-radius:8px 8px 0 0}.log{flex:1;overflow:auto;padding:8px;min-height:160px}' +
    '.m{margin:4px 0;padding:6px 8px;border-radius:6px;max-width:80%;white-space:pre-wrap}' +
    '.visitor{background:#e8f0fe;margin-left:auto}.agent{background:#f1f1f1}.sys{color:#777;' +
    'font-size:12px;text-align:center}form{display:flex;flex-direction:column;gap:4px;padding:8px}' +
    'input,textarea,button{font:inherit}.bar{display:flex;gap:4px;padding:8px}.bar input[type=text]' +
    '{flex:1}.typing{color:#777;font-size:12px;padding:0 8px;height:16px}.stars button{font-size:18px}' +
    '</style><div class="box"><div class="head">Chat with us <span class="st"></span></div>' +
    '<div class="log" part="log"></div><div class="typing"></div><div class="pane"></div></div>';
  var log = root.querySelector(".log"), pane = root.querySelector(".pane");
  var typingEl = root.querySelector(".typing"), stEl = root.querySelector(".st");

  function el(html) { var d = document.createElement("div"); d.innerHTML = html; return d.firstChild; }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function note(text) { var d = el('<div class="m sys"></div>'); d.textContent = text; log.appendChild(d); log.scrollTop = 1e9; }

  function show(m) {
    var k = m.contact + ":" + m.seq;
    if (shown[k]) return;  // never twice, whatever the network did
    shown[k] = true;
    var d = el('<div class="m ' + (m.from === "agent" ? "agent" : "visitor") + '"></div>');
    d.setAttribute("data-seq", m.seq);
    var files = m.files || [];
    var named = (m.attachments || []).filter(function (n) {
      return !files.some(function (f) { return f.name === n; });
    });
    d.textContent = m.text + (named.length ? " 📎 " + named.join(", ") : "");
    files.forEach(function (f) {
      var a = el('<a class="file" href="#"></a>');
      a.textContent = "📎 " + f.name;
      a.onclick = function (e) { e.preventDefault(); download(f); };
      d.appendChild(document.createTextNode(" "));
      d.appendChild(a);
    });
    log.appendChild(d);
    log.scrollTop = 1e9;
    if (m.contact === state.contact && m.seq > (state.last || 0)) { state.last = m.seq; save(); }
  }

  function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

  function chatBar() {
    pane.innerHTML = '<div class="bar"><input type="text" name="text" placeholder="Type a message">' +
      '<button name="send">Send</button><input type="file" name="file" style="width:90px">' +
      '<button name="leave" title="End chat">✕</button></div>';
    var input = pane.querySelector("[name=text]");
    function go() {
      var text = input.value.trim();
      if (!text) return;
      var cid = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
      pending[cid] = text;
      send({ type: "message", cid: cid, text: text });
      input.value = "";
      stopTyping();
    }
    pane.querySelector("[name=send]").onclick = go;
    input.onkeydown = function (e) { if (e.key === "Enter") go(); };
    input.oninput = function () {
      if (!typingSent) { typingSent = true; send({ type: "typing", on: true }); }
      clearTimeout(typingTimer);
      typingTimer = setTimeout(stopTyping, 3000);
    };
    pane.querySelector("[name=leave]").onclick = function () { send({ type: "leave" }); };
    pane.querySelector("[name=file]").onchange = function (e) { upload(e.target.files[0]); e.target.value = ""; };
  }
  function stopTyping() { if (typingSent) { typingSent = false; send({ type: "typing", on: false }); } }

  // The token goes in a header (not the URL, where logs would keep it): fetch, then save.
  function download(f) {
    fetch(httpBase + "/chat/files/" + encodeURIComponent(f.sha256), {
      headers: { "X-Chat-Token": state.token }
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (b) { note(b.message); });
      return r.blob().then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = f.name;
        root.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
      });
    });
  }

  function upload(file) {
    if (!file) return;
    var cid = "f" + Date.now().toString(36);
    fetch(httpBase + "/chat/upload?cid=" + cid + "&name=" + encodeURIComponent(file.name), {
      method: "POST", body: file,
      headers: { "X-Chat-Token": state.token, "Content-Type": file.type || "application/octet-stream" }
    }).then(function (r) { return r.ok ? null : r.json().then(function (b) { note(b.message); }); });
  }

  function form(online) {
    pane.innerHTML = online
      ? '<form name="start"><input name="name" placeholder="Your name" required>' +
        '<input name="email" placeholder="Email"><input name="phone" placeholder="Phone">' +
        '<textarea name="text" placeholder="How can we help?"></textarea><button>Start chat</button></form>'
      : '<form name="offline"><div>We are offline. Leave a message and we will email you.</div>' +
        '<input name="name" placeholder="Your name"><input name="email" placeholder="Email" required>' +
        '<textarea name="text" placeholder="Your message" required></textarea><button>Send</button></form>';
    var f = pane.querySelector("form");
    f.onsubmit = function (e) {
      e.preventDefault();
      var data = { type: online ? "start" : "offline", cid: "first" };
      ["name", "email", "phone", "text"].forEach(function (n) { if (f[n] && f[n].value) data[n] = f[n].value; });
      send(data);
    };
  }

  function csat(contact) {
    pane.innerHTML = '<div class="bar stars">Rate this chat: ' + [1, 2, 3, 4, 5].map(function (n) {
      return '<button data-score="' + n + '">★</button>'; }).join("") + '</div>';
    pane.querySelectorAll("button").forEach(function (b) {
      b.onclick = function () { send({ type: "csat", score: +b.getAttribute("data-score") }); };
    });
  }

  var handlers = {
    welcome: function (m) { form(m.online); },
    session: function (m) {
      if (state.token !== m.token) { state = { token: m.token }; save(); }
      if (!pane.querySelector(".bar")) chatBar();
      for (var cid in pending) send({ type: "message", cid: cid, text: pending[cid] });
    },
    state: function (m) {
      if (state.contact !== m.contact) { state.contact = m.contact; state.last = 0; save(); }
      stEl.textContent = m.state === "assigned" ? "· " + (m.agent || "agent") :
        m.state === "queued" ? "· waiting" : m.state === "closed" ? "· ended" : "";
    },
    message: show,
    ack: function (m) { delete pending[m.cid]; },
    typing: function (m) { typingEl.textContent = m.on ? "Agent is typing…" : ""; },
    csat_request: function (m) { csat(m.contact); },
    csat_thanks: function () { pane.innerHTML = ""; note("Thank you for your rating."); },
    left_message: function () { pane.innerHTML = ""; note("Thank you, we will answer by email."); },
    error: function (m) { if (m.error === "unauthorized") { state = {}; save(); } note(m.message); },
    pong: function () {}
  };

  function connect() {
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      backoff = 250;
      // A fresh page has shown nothing yet: it asks for the whole conversation.
      var seen = Object.keys(shown).length ? state.last || 0 : 0;
      send({ type: "hello", token: state.token, contact: state.contact, last_seq: seen });
    };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      (handlers[m.type] || function () {})(m);
    };
    ws.onclose = function () {
      if (closedByUs) return;
      setTimeout(connect, backoff);  // resume where we were
      backoff = Math.min(backoff * 2, 10000);
    };
  }
  window.ctlChat = {  // for tests and host pages
    reconnect: function () { if (ws) ws.close(); },
    close: function () { closedByUs = true; if (ws) ws.close(); },
    state: function () { return JSON.parse(JSON.stringify(state)); }
  };
  connect();
})();
