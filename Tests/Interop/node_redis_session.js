// A connect-redis-like session story told with node-redis v4 (Debian's node-redis).
// Usage: node node_redis_session.js '{"port":1234,"username":"app","password":"pw","prefix":"sess:"}'
// Prints one JSON object with what each step saw; pytest asserts it.
'use strict';

const { createClient } = require('redis');

async function main() {
  const options = JSON.parse(process.argv[2]);
  const url = { socket: { host: '127.0.0.1', port: options.port, connectTimeout: 5000 } };
  if (options.username) url.username = options.username;
  if (options.password) url.password = options.password;
  url.name = 'interop-node';
  const client = createClient(url);
  const errors = [];
  let connected = false;
  client.on('error', (err) => {
    errors.push(String(err));
    if (!connected) {
      // node-redis 4.5 keeps reconnecting after a handshake error (AUTH refused) and never
      // settles connect(); its 'error' event is where an app sees the server's answer.
      process.stdout.write(JSON.stringify({ fatal: String(err && err.message ? err.message : err) }) + '\n');
      process.exit(2);
    }
  });
  await client.connect();
  connected = true;

  const prefix = options.prefix;
  const oldId = `${prefix}${options.oldId}`;
  const newId = `${prefix}${options.newId}`;
  const session = JSON.stringify({ cookie: { maxAge: 1800000 }, user: 'ann' });
  const out = {};
  out.ping = await client.ping();
  out.clientName = await client.clientGetName();
  // Create with a lifetime (connect-redis: SET key val EX ttl).
  out.set = await client.set(oldId, session, { EX: 1800 });
  out.get = await client.get(oldId);
  out.ttl = await client.ttl(oldId);
  // Touch (connect-redis: EXPIRE).
  out.expire = await client.expire(oldId, 3600);
  out.ttlAfterTouch = await client.ttl(oldId);
  // connect-redis all()/length(): SCAN MATCH + MGET.
  const found = [];
  for await (const key of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) found.push(key);
  out.scan = found.sort();
  out.mget = await client.mGet(found);
  // Regenerate: rename to a new id.
  out.rename = await client.rename(oldId, newId);
  out.getOld = await client.get(oldId);
  out.getNew = await client.get(newId);
  out.ttlNew = await client.ttl(newId);
  // A transaction.
  out.multi = await client.multi().incr(`${newId}:hits`).expire(`${newId}:hits`, 60).get(newId).exec();
  // Logout.
  out.del = await client.del([newId, `${newId}:hits`]);
  out.existsAfter = await client.exists(newId);
  out.getAfter = await client.get(newId);
  try {
    await client.rename(oldId, newId);
    out.renameMissing = 'no error';
  } catch (err) {
    out.renameMissing = String(err.message);
  }
  await client.quit();
  out.errors = errors;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ fatal: String(err && err.message ? err.message : err) }) + '\n');
  process.exit(2);
});
