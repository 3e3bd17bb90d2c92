/* Every page: the CSRF value, and live updates. When the node's records change, the
 * server sends an event; the page refetches itself and swaps the parts marked
 * data-live (never a form being filled in). */
(function () {
  "use strict";
  window.allmendeCsrf = function () {
    const m = document.querySelector('meta[name="csrf"]');
    return m ? m.content : "";
  };

  async function refresh() {
    const res = await fetch(location.href, { headers: { accept: "text/html" } });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    let changed = 0;
    for (const el of document.querySelectorAll("[data-live][id]")) {
      const fresh = doc.getElementById(el.id);
      if (fresh && fresh.innerHTML !== el.innerHTML) { el.innerHTML = fresh.innerHTML; changed++; }
    }
    const live = document.getElementById("live");
    if (live && changed) live.textContent = "updated " + new Date().toLocaleTimeString();
    document.dispatchEvent(new CustomEvent("allmende:refreshed"));
  }

  if (window.EventSource) {
    let first = true;
    const source = new EventSource("/events");
    source.addEventListener("version", function () {
      if (first) { first = false; return; }
      refresh().catch(function () {});
    });
  }
})();
