// A Hono app, bundled unmodified by esbuild: routing with params, JSON, middleware, 404.
import { Hono } from "hono";

const app = new Hono();

app.use("*", async (c, next) => {
  await next();
  c.header("x-powered-by", "hono-on-nano");
});

app.get("/", (c) => c.text("hello from hono"));
app.get("/users/:id", (c) => c.json({ id: c.req.param("id"), q: c.req.query("q") ?? null }));
app.post("/echo", async (c) => c.json({ received: await c.req.json() }, 201));

export default app;
