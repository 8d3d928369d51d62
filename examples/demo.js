// A self-contained program with some network traffic: an HTTP server and three requests over
// IPv4 loopback, and a DNS-like UDP question and answer over IPv6 loopback. Used by
// `npm run demo`, which captures it with tracedump.
'use strict';
const http = require('node:http');
const dgram = require('node:dgram');

function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      })
      .on('error', reject);
  });
}

function udpRoundTrip() {
  return new Promise((resolve, reject) => {
    const server = dgram.createSocket('udp6');
    const client = dgram.createSocket('udp6');
    server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
    client.on('message', (msg) => {
      client.close();
      server.close();
      resolve(msg.length);
    });
    server.on('error', reject);
    server.bind(0, '::1', () => client.send(Buffer.from('where is example.test?'), server.address().port, '::1'));
  });
}

async function main() {
  const server = http.createServer((req, res) => res.end(`hello from ${req.url}\n`));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  for (const path of ['/one', '/two', '/three']) console.log(`GET ${path} -> ${await get(port, path)}`);
  server.close();
  console.log(`UDP over ::1 -> ${await udpRoundTrip()} bytes echoed`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
