// The reference the ingest load test is measured against: a WhatsApp webhook receiver on Node's
// http module and whatsapp-api-js (a popular WhatsApp Cloud API library), as its README shows:
// `handle_post` reads the body, checks X-Hub-Signature-256 and parses it. Nothing is stored, so
// its 200 is not durable. With RECEIVER=bare it skips the library for the least a Node receiver
// can do: node:crypto's HMAC over the raw bytes, timingSafeEqual and JSON.parse (an upper bound
// for Node on this machine). Prints "listening on http://ADDR" once it listens; GET /stats reports
// the POSTs it answered and the span between the first and the last, as `wabridge stats` does.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { WhatsAppAPI } from "whatsapp-api-js/middleware/node-http";
import { NodeNext } from "whatsapp-api-js/setup/node";

const appSecret = process.env.WHATSAPP_APP_SECRET;
if (!appSecret) {
  console.error("WHATSAPP_APP_SECRET is required");
  process.exit(2);
}
const Whatsapp = new WhatsAppAPI(
  NodeNext({ token: "unused", appSecret, webhookVerifyToken: "unused", v: "v23.0" }),
);
// One callback per message, as an application would register; it does nothing.
Whatsapp.on.message = () => {};

const MAX_BODY = 1024 * 1024;

async function bare(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) return 413;
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const header = req.headers["x-hub-signature-256"] ?? "";
  const given = Buffer.from(header.startsWith("sha256=") ? header.slice(7) : "", "hex");
  const expected = createHmac("sha256", appSecret).update(body).digest();
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 401;
  try {
    const data = JSON.parse(body.toString("utf8"));
    return data?.object === "whatsapp_business_account" ? 200 : 400;
  } catch {
    return 400;
  }
}

const handle = process.env.RECEIVER === "bare" ? bare : (req) => Whatsapp.handle_post(req);

const stats = { ok: 0, failed: 0, first_ms: 0, last_ms: 0 };

const server = createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/webhook") {
    const status = await handle(req);
    const now = Date.now();
    if (status === 200) {
      if (stats.ok === 0) stats.first_ms = now;
      stats.ok += 1;
      stats.last_ms = now;
    } else {
      stats.failed += 1;
    }
    res.statusCode = status;
    res.end();
  } else if (req.method === "GET" && req.url === "/healthz") {
    res.end("ok");
  } else if (req.method === "GET" && req.url === "/stats") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(stats));
  } else {
    res.statusCode = 404;
    res.end();
  }
});

const [host, port] = (process.argv[2] ?? "127.0.0.1:0").split(":");
server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}`);
});
