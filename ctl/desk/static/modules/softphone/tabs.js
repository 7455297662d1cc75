// One desk tab per agent and browser owns the softphone. Two registrations of one agent
// would both ring (Asterisk keeps two contacts per WebRTC endpoint), and each tab would
// pick up or drop the other's calls. The owner holds a Web Lock for as long as it lives;
// the browser hands the lock to a waiting tab the moment the owner closes or lets go,
// so a second tab takes over by itself. A BroadcastChannel carries what the other tabs
// ask of the owner (the offer toast's Accept answers the call ringing in the owner).

export function phoneOwner(agentId) {
  const name = `ctl.softphone:${agentId}`;
  const channel = "BroadcastChannel" in window ? new BroadcastChannel(name) : null;
  let release = null; // while this tab owns the phone: lets the lock go
  let waiting = null; // while this tab waits: {promise, abort}

  return {
    get owned() {
      return release !== null || !navigator.locks;
    },

    // Resolves true once this tab owns the phone (at once when no other tab has it;
    // `elsewhere()` is called first when one has), false when given up (`let go`).
    acquire(elsewhere) {
      if (!navigator.locks || release) return Promise.resolve(true); // no locks: as before
      if (waiting) return waiting.promise;
      const abort = new AbortController();
      const promise = new Promise((resolve) => {
        const hold = (lock) => {
          if (!lock) return null;
          waiting = null;
          resolve(true);
          return new Promise((done) => { release = done; });
        };
        navigator.locks.request(name, { ifAvailable: true }, (lock) => {
          if (lock) return hold(lock);
          elsewhere();
          navigator.locks.request(name, { signal: abort.signal }, hold).catch(() => {
            if (waiting && waiting.abort === abort) waiting = null;
            resolve(false); // aborted: this tab no longer wants the phone
          });
          return null;
        });
      });
      waiting = { promise, abort };
      return promise;
    },

    // Stop owning (or waiting for) the phone: a waiting tab takes over.
    letGo() {
      // Forgotten at once: switched on again right away, this tab queues anew.
      if (waiting) waiting.abort.abort();
      waiting = null;
      if (release) release();
      release = null;
    },

    // To the owner, from another tab. The owner's handler gets every message.
    tell(message) {
      if (channel) channel.postMessage(message);
    },
    listen(fn) {
      if (channel) channel.addEventListener("message", (ev) => fn(ev.data));
    },
  };
}
