// Boots the panel: strings, the desk object, every module's mount(desk), then the push
// stream (so every module's `ws:open` handler sees the first connect).
import { connect, createDesk } from "./core.js";

async function boot() {
  const config = JSON.parse(document.getElementById("desk-config").textContent);
  const strings = await (await fetch(config.i18n, { credentials: "same-origin" })).json();
  const desk = createDesk(config, strings);
  window.desk = desk; // for the browser tests and the console
  const mounted = await Promise.allSettled(config.modules.map(async (url) => {
    const module = await import(url);
    if (typeof module.mount !== "function") throw new Error(`${url} exports no mount(desk)`);
    await module.mount(desk);
  }));
  mounted.forEach((r, i) => {
    if (r.status === "rejected") console.error(`desk: module ${config.modules[i]} failed`, r.reason);
  });
  connect(desk);
  document.body.dataset.ready = "true";
}

boot();
