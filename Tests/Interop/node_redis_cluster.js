// node-redis v4 (Debian's node-redis) in cluster mode: it reads the slot map (CLUSTER NODES in
// 4.5) and sends each key to its partition's primary.
// Usage: node node_redis_cluster.js '{"port":1234,"prefix":"sess:"}'
// Prints one JSON object with what it saw; pytest asserts it.
'use strict';

const { createCluster } = require('redis');

async function main() {
  const options = JSON.parse(process.argv[2]);
  const cluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${options.port}` }] });
  const errors = [];
  cluster.on('error', (err) => errors.push(String(err)));
  await cluster.connect();
  const out = { masters: cluster.getMasters().length, sets: 0, gets: 0 };
  for (let index = 0; index < 100; index++) {
    if ((await cluster.set(`${options.prefix}${index}`, `value${index}`, { EX: 1800 })) === 'OK') out.sets++;
  }
  for (let index = 0; index < 100; index++) {
    if ((await cluster.get(`${options.prefix}${index}`)) === `value${index}`) out.gets++;
  }
  await cluster.quit();
  out.errors = errors;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ fatal: String(err && err.message ? err.message : err) }) + '\n');
  process.exit(2);
});
