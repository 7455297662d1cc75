// The `desk` object every module's mount(desk) receives (the contract is in
// helpers-common.md and README "The agent desktop"): REST with the session's CSRF token,
// one event bus for websocket pushes and the desk's own events, strings, regions.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let leaving = false;

// To the login page, once: a logout, a 401 and the socket's "session over" may all come
// at the same moment, and a second navigation would abort the first.
function leave() {
  if (leaving) return;
  leaving = true;
  location.assign("/desk/login");
}

export function createDesk(config, strings) {
  const handlers = new Map();
  const desk = {
    me: Object.freeze({ ...config.me }),
    languages: config.languages,
    awayReasons: config.away_reasons || [],
    socket: null,

    async api(method, path, body) {
      const headers = { Accept: "application/json" };
      if (UNSAFE.has(method.toUpperCase())) headers["X-CSRF-Token"] = config.csrf;
      const init = { method, headers, credentials: "same-origin" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return answer(await fetch(path, init), desk);
    },

    async upload(path, form) {
      return answer(await fetch(path, {
        method: "POST", body: form, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": config.csrf },
      }), desk);
    },

    // Returns a function that removes the handler.
    on(type, fn) {
      if (!handlers.has(type)) handlers.set(type, new Set());
      handlers.get(type).add(fn);
      return () => handlers.get(type).delete(fn);
    },

    emit(type, detail) {
      for (const fn of [...(handlers.get(type) || [])]) {
        try {
          fn(detail);
        } catch (e) {
          console.error(`desk: a "${type}" handler failed`, e);
        }
      }
    },

    t(key, vars) {
      const text = strings[key] ?? key;
      return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
    },

    // A refusal from the API in the desk's language: the server names it (`reason`,
    // ctl/errors.py) and this language's errors.json words it; a reason it does not
    // know shows the server's own (English) message.
    describe(body) {
      const key = body && body.reason ? `errors.${body.reason}` : "";
      if (key && key in strings) return desk.t(key, body.params || {});
      return (body && body.message) || "";
    },

    // End the session (the agent goes offline) and go to the login page.
    async logout() {
      try {
        await desk.api("POST", "/api/v1/logout");
      } catch (e) {
        // Cut short by the socket's "session over" (the page is leaving), or failed:
        // the login page shows which (it sends a live session back to the desk).
      } finally {
        desk.socket = null;
        leave();
      }
    },

    region(name) {
      const el = document.querySelector(`[data-region="${name}"]`);
      if (!el) throw new Error(`desk: no region "${name}"`);
      return el;
    },
  };
  return desk;
}

async function answer(response, desk) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { message: text };
  }
  if (!response.ok) {
    if (response.status === 401) leave();
    const err = new Error(desk.describe(body) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    err.code = body && body.error;
    err.reason = body && body.reason;
    throw err;
  }
  return body;
}

// The push stream: reconnects with capped, jittered backoff; after every (re)connect it
// emits `ws:open` (pushes have no replay, so modules re-read what they show).
export function connect(desk) {
  let delay = 500;
  let retry = 0;
  const open = () => {
    retry = 0;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/ws`);
    desk.socket = ws;
    ws.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "hello") {
        delay = 500;
        desk.emit("ws:open", msg);
      } else if ((msg.type === "error" && msg.error === "unauthorized")
                 || (msg.type === "closed" && msg.reason === "logged_out")) {
        desk.socket = null; // no reconnect: this session is over
        leave();
        return;
      }
      desk.emit(msg.type, msg);
    });
    ws.addEventListener("close", () => {
      if (desk.socket !== ws) return;
      desk.emit("ws:close", {});
      const wait = delay * (0.75 + Math.random() / 2);
      delay = Math.min(delay * 2, 15000);
      retry = setTimeout(open, wait);
    });
  };
  // Back on the network: try now rather than at the end of a long backoff.
  window.addEventListener("online", () => {
    if (!retry) return;
    clearTimeout(retry);
    delay = 500;
    open();
  });
  open();
}
