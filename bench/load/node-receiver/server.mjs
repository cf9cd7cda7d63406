// The reference the ingest load test is measured against: a WhatsApp webhook receiver on Node's
// http module and whatsapp-api-js (a popular WhatsApp Cloud API library), as its README shows:
// `handle_post` reads the body, checks X-Hub-Signature-256 and parses it. Nothing is stored, so
// its 200 is not durable.
//   RECEIVER=bare  skip the library: node:crypto's HMAC over the raw bytes, timingSafeEqual and
//                  JSON.parse, the least a Node receiver can do.
//   WORKERS=N      N processes sharing the port (node:cluster; default 1: one process, no
//                  cluster), as Node is scaled across cores.
// Prints "listening on http://ADDR" once every worker listens. GET /stats reports the POSTs
// answered and the span between the first and the last (as `wabridge stats` does), summed over
// the workers, each of which reports every 100 ms: ask a little after the load stops.
import cluster from "node:cluster";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { WhatsAppAPI } from "whatsapp-api-js/middleware/node-http";
import { NodeNext } from "whatsapp-api-js/setup/node";

const appSecret = process.env.WHATSAPP_APP_SECRET;
if (!appSecret) {
  console.error("WHATSAPP_APP_SECRET is required");
  process.exit(2);
}
const workers = Math.max(1, Number(process.env.WORKERS ?? 1));
const [host, port] = (process.argv[2] ?? "127.0.0.1:0").split(":");

if (workers === 1) {
  serve();
} else if (cluster.isPrimary) {
  // The primary only forks, prints the address and sums the workers' counters.
  const latest = new Map();
  let listening = 0;
  const sum = () => {
    const all = [...latest.values()];
    const firsts = all.filter((s) => s.ok > 0).map((s) => s.first_ms);
    return {
      ok: all.reduce((n, s) => n + s.ok, 0),
      failed: all.reduce((n, s) => n + s.failed, 0),
      first_ms: firsts.length ? Math.min(...firsts) : 0,
      last_ms: Math.max(0, ...all.map((s) => s.last_ms)),
    };
  };
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork();
    worker.on("message", (msg) => {
      if (msg.listening) {
        listening += 1;
        if (listening === workers) console.log(`listening on http://${msg.listening}`);
      } else if (msg.stats) {
        latest.set(worker.id, msg.stats);
      } else if (msg.ask) {
        worker.send({ answer: msg.ask, stats: sum() });
      }
    });
  }
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  serve();
}

function serve() {
  const Whatsapp = new WhatsAppAPI(
    NodeNext({ token: "unused", appSecret, webhookVerifyToken: "unused", v: "v23.0" }),
  );
  // One callback per message, as an application would register; it does nothing.
  Whatsapp.on.message = () => {};
  const handle = process.env.RECEIVER === "bare" ? bare : (req) => Whatsapp.handle_post(req);

  const stats = { ok: 0, failed: 0, first_ms: 0, last_ms: 0 };
  const waiting = new Map();
  let asked = 0;
  if (cluster.isWorker) {
    let reported = -1;
    setInterval(() => {
      if (stats.ok + stats.failed !== reported) {
        reported = stats.ok + stats.failed;
        process.send({ stats });
      }
    }, 100).unref();
    process.on("message", (msg) => {
      waiting.get(msg.answer)?.(msg.stats);
      waiting.delete(msg.answer);
    });
  }

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
      const answer = (sum) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(sum));
      };
      if (cluster.isWorker) {
        asked += 1;
        waiting.set(asked, answer);
        process.send({ ask: asked });
      } else {
        answer(stats);
      }
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  server.listen(Number(port), host, () => {
    const a = server.address();
    const addr = `${a.address}:${a.port}`;
    if (cluster.isWorker) process.send({ listening: addr });
    else console.log(`listening on http://${addr}`);
  });

  // Event callbacks rather than `for await`: the async iterator costs Node a good share of its
  // rate here, and this is meant as the fastest Node receiver.
  function bare(req) {
    return new Promise((resolve) => {
      const chunks = [];
      let size = 0;
      req.on("data", (chunk) => {
        size += chunk.length;
        if (size > 1024 * 1024) {
          req.destroy();
          resolve(413);
        } else {
          chunks.push(chunk);
        }
      });
      req.on("end", () => resolve(check(Buffer.concat(chunks), req.headers["x-hub-signature-256"])));
    });
  }

  function check(body, header = "") {
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
}
