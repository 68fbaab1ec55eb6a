import { createRequire } from "node:module"; const require = createRequire("/");
var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __require = /* @__PURE__ */ ((x) => typeof require !== "undefined" ? require : typeof Proxy !== "undefined" ? new Proxy(x, {
  get: (a, b) => (typeof require !== "undefined" ? require : a)[b]
}) : x)(function(x) {
  if (typeof require !== "undefined") return require.apply(this, arguments);
  throw Error('Dynamic require of "' + x + '" is not supported');
});
var __commonJS = (cb, mod) => function __require2() {
  try {
    return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
  } catch (e) {
    throw mod = 0, e;
  }
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  // If the importer is in node compatibility mode or this is not an ESM
  // file that has been converted to a CommonJS file using a Babel-
  // compatible transform (i.e. "__esModule" has not been set), then set
  // "default" to the CommonJS "module.exports" for node compatibility.
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));

// node_modules/jwt-simple/lib/jwt.js
var require_jwt = __commonJS({
  "node_modules/jwt-simple/lib/jwt.js"(exports, module) {
    var crypto = __require("crypto");
    var algorithmMap = {
      HS256: "sha256",
      HS384: "sha384",
      HS512: "sha512",
      RS256: "RSA-SHA256"
    };
    var typeMap = {
      HS256: "hmac",
      HS384: "hmac",
      HS512: "hmac",
      RS256: "sign"
    };
    var jwt2 = module.exports;
    jwt2.version = "0.5.6";
    jwt2.decode = function jwt_decode(token, key, noVerify, algorithm) {
      if (!token) {
        throw new Error("No token supplied");
      }
      var segments = token.split(".");
      if (segments.length !== 3) {
        throw new Error("Not enough or too many segments");
      }
      var headerSeg = segments[0];
      var payloadSeg = segments[1];
      var signatureSeg = segments[2];
      var header = JSON.parse(base64urlDecode(headerSeg));
      var payload = JSON.parse(base64urlDecode(payloadSeg));
      if (!noVerify) {
        if (!algorithm && /BEGIN( RSA)? PUBLIC KEY/.test(key.toString())) {
          algorithm = "RS256";
        }
        var signingMethod = algorithmMap[algorithm || header.alg];
        var signingType = typeMap[algorithm || header.alg];
        if (!signingMethod || !signingType) {
          throw new Error("Algorithm not supported");
        }
        var signingInput = [headerSeg, payloadSeg].join(".");
        if (!verify(signingInput, key, signingMethod, signingType, signatureSeg)) {
          throw new Error("Signature verification failed");
        }
        if (payload.nbf && Date.now() < payload.nbf * 1e3) {
          throw new Error("Token not yet active");
        }
        if (payload.exp && Date.now() > payload.exp * 1e3) {
          throw new Error("Token expired");
        }
      }
      return payload;
    };
    jwt2.encode = function jwt_encode(payload, key, algorithm, options) {
      if (!key) {
        throw new Error("Require key");
      }
      if (!algorithm) {
        algorithm = "HS256";
      }
      var signingMethod = algorithmMap[algorithm];
      var signingType = typeMap[algorithm];
      if (!signingMethod || !signingType) {
        throw new Error("Algorithm not supported");
      }
      var header = { typ: "JWT", alg: algorithm };
      if (options && options.header) {
        assignProperties(header, options.header);
      }
      var segments = [];
      segments.push(base64urlEncode(JSON.stringify(header)));
      segments.push(base64urlEncode(JSON.stringify(payload)));
      segments.push(sign(segments.join("."), key, signingMethod, signingType));
      return segments.join(".");
    };
    function assignProperties(dest, source) {
      for (var attr in source) {
        if (source.hasOwnProperty(attr)) {
          dest[attr] = source[attr];
        }
      }
    }
    function verify(input, key, method, type, signature) {
      if (type === "hmac") {
        return signature === sign(input, key, method, type);
      } else if (type == "sign") {
        return crypto.createVerify(method).update(input).verify(key, base64urlUnescape(signature), "base64");
      } else {
        throw new Error("Algorithm type not recognized");
      }
    }
    function sign(input, key, method, type) {
      var base64str;
      if (type === "hmac") {
        base64str = crypto.createHmac(method, key).update(input).digest("base64");
      } else if (type == "sign") {
        base64str = crypto.createSign(method).update(input).sign(key, "base64");
      } else {
        throw new Error("Algorithm type not recognized");
      }
      return base64urlEscape(base64str);
    }
    function base64urlDecode(str) {
      return Buffer.from(base64urlUnescape(str), "base64").toString();
    }
    function base64urlUnescape(str) {
      str += new Array(5 - str.length % 4).join("=");
      return str.replace(/\-/g, "+").replace(/_/g, "/");
    }
    function base64urlEncode(str) {
      return base64urlEscape(Buffer.from(str).toString("base64"));
    }
    function base64urlEscape(str) {
      return str.replace(/\+/g, "-").replace(/\//g, "_").replace(/=/g, "");
    }
  }
});

// node_modules/jwt-simple/index.js
var require_jwt_simple = __commonJS({
  "node_modules/jwt-simple/index.js"(exports, module) {
    module.exports = require_jwt();
  }
});

// src/jwt-app.js
var import_jwt_simple = __toESM(require_jwt_simple());
var jwt_app_default = {
  async fetch(request, env) {
    const payload = { sub: "user-42", name: "Zo\xEB", admin: true, iat: 17e8 };
    const token = import_jwt_simple.default.encode(payload, env.SECRET, "HS256");
    let tampered;
    try {
      import_jwt_simple.default.decode(token.slice(0, -2) + "xx", env.SECRET);
      tampered = "accepted";
    } catch (err) {
      tampered = err.message;
    }
    return Response.json({
      token,
      decoded: import_jwt_simple.default.decode(token, env.SECRET),
      hs512: import_jwt_simple.default.encode({ a: 1 }, "k", "HS512"),
      tampered
    });
  }
};
export {
  jwt_app_default as default
};
