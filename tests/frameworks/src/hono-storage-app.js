// Hono's contextStorage() middleware, bundled unmodified: it keeps each request's context in an
// AsyncLocalStorage (node:async_hooks), which must follow every await and timer of its own
// request, also while other requests interleave on the same isolate.
import { Hono } from "hono";
import { contextStorage, getContext } from "hono/context-storage";

const app = new Hono();
app.use(contextStorage());
app.use(async (c, next) => {
  c.set("requestId", c.req.query("id"));
  await next();
});

// Reads the context far from the handler: inside a timer's callback (as a deferred logger
// would), then again after an await.
async function currentRequestId() {
  const wait = Number(getContext().req.query("wait") ?? 0);
  const inTimer = await new Promise((resolve) => setTimeout(() => resolve(getContext().var.requestId), wait));
  await null;
  return `${inTimer}/${getContext().var.requestId}`;
}

app.get("/who", async (c) => c.json({ id: await currentRequestId() }));

export default app;
