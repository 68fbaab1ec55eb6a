// jwt-simple (CommonJS: require("crypto"), Buffer), bundled unmodified by esbuild for Node with
// the usual createRequire banner (see tests/e2e/frameworks.rs).
import jwt from "jwt-simple";

export default {
  async fetch(request, env) {
    const payload = { sub: "user-42", name: "Zoë", admin: true, iat: 1700000000 };
    const token = jwt.encode(payload, env.SECRET, "HS256");
    let tampered;
    try {
      jwt.decode(token.slice(0, -2) + "xx", env.SECRET);
      tampered = "accepted";
    } catch (err) {
      tampered = err.message;
    }
    return Response.json({
      token,
      decoded: jwt.decode(token, env.SECRET),
      hs512: jwt.encode({ a: 1 }, "k", "HS512"),
      tampered,
    });
  },
};
