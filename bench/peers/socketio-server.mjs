#!/usr/bin/env node
// bench/peers/socketio-server.mjs — the Socket.IO 4.x peer, written with rooms exactly as its docs teach.
//
// A client emits `subscribe` with an array of symbols (and an acknowledgement callback); the server
// `socket.join(symbol)`s each one. Every feed update is `io.to(symbol).emit('price', update)`: one
// Socket.IO event (one WebSocket frame) per update per subscriber. Default server options (polling and
// websocket transports, no compression); the load tool connects with the websocket transport only:
//   /socket.io/?EIO=4&transport=websocket  →  0{…open…}, 40 → 40{"sid":…}, 421["subscribe",[…]] → 431[…],
//   then 42["price",{"symbol":…,"seq":…,"ts":<µs epoch>,…}]; Engine.IO ping "2" is answered with "3".
//   usage: node socketio-server.mjs [--port 0] [--symbols 100] [--rate 1000] [--seed 1] [--max-rss-mb 4096]
//          [--hold: the market starts on SIGUSR2]
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { peerArgs, peerLifecycle, startFeed } from './feed.mjs';

const NAME = 'socketio-peer';
const opt = peerArgs(NAME);
const http = createServer();
const io = new Server(http, { serveClient: false });

io.on('connection', (socket) => {
  socket.on('subscribe', (symbols, ack) => {
    for (const symbol of Array.isArray(symbols) ? symbols : []) socket.join(symbol);
    if (typeof ack === 'function') ack({ ok: true });
  });
});

const feed = startFeed(opt, (u) => io.to(u.symbol).emit('price', u));
http.listen(opt.port, '127.0.0.1', () => peerLifecycle(NAME, http, opt.maxRssMb, feed.stats));
