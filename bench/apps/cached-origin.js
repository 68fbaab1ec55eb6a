// A route in front of an origin (env.ORIGIN): with env.CACHE = "on" it answers from
// caches.default when it can and fetches (and puts) only on a miss; otherwise it fetches every
// time. bench/cache.py compares the two.
export default {
  async fetch(request, env, ctx) {
    const cache = caches.default;
    if (env.CACHE === "on") {
      const hit = await cache.match(request.url);
      if (hit) return hit;
    }
    const origin = await fetch(env.ORIGIN);
    const response = new Response(origin.body, origin);
    response.headers.set("cache-control", "max-age=600");
    if (env.CACHE === "on") ctx.waitUntil(cache.put(request.url, response.clone()));
    return response;
  },
};
