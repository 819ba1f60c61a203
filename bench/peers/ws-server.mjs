#!/usr/bin/env node
// bench/peers/ws-server.mjs — the `ws` 8.x peer: what a developer would write with the `ws` package.
//
// Rooms are a Map of symbol → Set of sockets. Each feed update is serialized once and sent to every
// subscriber of its symbol as its own text message (one frame per update, no batching, no conflation).
// Protocol (JSON text frames):
//   client → {"op":"subscribe","symbols":["G00001-USD",…],"id":1}
//   server → {"op":"ack","id":1}        then one message per update:
//   server → {"symbol":"G00001-USD","last":…,"bid":…,"ask":…,"volume":…,"seq":…,"ts":<µs epoch>,"src":"sim"}
//   usage: node ws-server.mjs [--port 0] [--symbols 100] [--rate 1000] [--seed 1] [--max-rss-mb 4096]
//          [--hold: the market starts on SIGUSR2]
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { peerArgs, peerLifecycle, startFeed } from './feed.mjs';

const NAME = 'ws-peer';
const opt = peerArgs(NAME);
const rooms = new Map(); // symbol → Set<WebSocket>

function subscribe(ws, msg) {
  for (const symbol of Array.isArray(msg.symbols) ? msg.symbols : []) {
    const room = rooms.get(symbol);
    if (!room) continue; // unknown symbol: ignored
    room.add(ws);
    ws.symbols.add(symbol);
  }
  ws.send(JSON.stringify({ op: 'ack', id: msg.id ?? null }));
}

function onConnection(ws) {
  ws.symbols = new Set();
  ws.on('message', (data, isBinary) => {
    let msg;
    try { msg = JSON.parse(data.toString()); } catch { return; }
    if (!isBinary && msg?.op === 'subscribe') subscribe(ws, msg);
  });
  ws.on('close', () => { for (const s of ws.symbols) rooms.get(s)?.delete(ws); });
  ws.on('error', () => {});
}

const http = createServer((req, res) => { res.writeHead(404).end(); });
const wss = new WebSocketServer({ server: http, path: '/ws' });
wss.on('connection', onConnection);
const feed = startFeed(opt, (u) => {
  const room = rooms.get(u.symbol);
  if (!room || room.size === 0) return;
  const msg = Buffer.from(JSON.stringify(u)); // encoded once per update, reused for every subscriber
  for (const ws of room) ws.send(msg, { binary: false });
});
for (const s of feed.symbols) rooms.set(s, new Set());
http.listen(opt.port, '127.0.0.1', () => peerLifecycle(NAME, http, opt.maxRssMb, feed.stats));
