// An itty-router app, bundled unmodified by esbuild.
import { AutoRouter, json } from "itty-router";

const router = AutoRouter();
router.get("/", () => "hello from itty");
router.get("/items/:id", ({ params }) => json({ item: params.id }));

export default { ...router };
