// The example app served by `nano` out of the box (hostname `localhost`).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/json") {
      return Response.json({ greeting: env.GREETING, method: request.method, path: url.pathname });
    }
    return new Response(`${env.GREETING}! You asked for ${url.pathname}\n`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
