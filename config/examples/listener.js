// Service-worker syntax; with "context_reset": false the counter persists for the isolate's life.
let hits = 0;
addEventListener("fetch", (event) => {
  hits += 1;
  event.respondWith(new Response(`hit ${hits}\n`));
});
