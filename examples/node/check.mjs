// tollgate from Node.js with ioredis: a decision, a pipeline and a WAIT.
//   REDIS_URL=redis://127.0.0.1:6379 node check.mjs
// Exits 1 if the server answers anything but what the protocol promises.
import Redis from "ioredis";

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
// WAIT holds the reply: no command timeout shorter than the longest WAIT.
const redis = new Redis(url, { commandTimeout: 10_000, maxRetriesPerRequest: 1 });
const run = `node-${process.pid}`;

function expect(what, ok, got) {
  if (!ok) {
    console.error(`FAIL ${what}: ${JSON.stringify(got)}`);
    process.exit(1);
  }
  console.log(`ok   ${what}: ${JSON.stringify(got)}`);
}

// One decision: [allowed, limit, remaining, retry_after_ms, reset_after_ms].
const d = await redis.call("LIMIT.CHECK", `${run}:user`, "token_bucket", 10, "1s");
expect("a decision", d.length === 5 && d[0] === 1 && d[1] === 10 && d[2] === 9 && d[3] === -1, d);

// A pipeline of 12 checks against a limit of 10: 10 allowed, then denials
// that say when to retry.
const pipe = redis.pipeline();
for (let i = 0; i < 12; i++) pipe.call("LIMIT.CHECK", `${run}:burst`, "fixed_window", 10, "1m");
const replies = (await pipe.exec()).map(([err, reply]) => {
  if (err) throw err;
  return reply;
});
const allowed = replies.filter((r) => r[0] === 1).length;
expect("a pipeline", allowed === 10 && replies[11][0] === 0 && replies[11][3] > 0, replies.map((r) => r[0]));

// WAIT: the second unit of a 1-per-second GCRA is held about a second, then allowed.
await redis.call("LIMIT.CHECK", `${run}:job`, "gcra", 1, "1s");
const started = Date.now();
const w = await redis.call("LIMIT.CHECK", `${run}:job`, "gcra", 1, "1s", "WAIT", "5s");
const waited = Date.now() - started;
expect("a WAIT", w[0] === 1 && waited >= 800, { reply: w, waited_ms: waited });

await redis.quit();
