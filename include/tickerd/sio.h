/*
 * sio.h — Socket.IO v5 over Engine.IO (eio.h), on the shared session layer
 * (session.h), so requests, limits, acks and errors are the WebSocket
 * endpoint's own (docs/protocol.md "Socket.IO").
 *
 * It owns the Socket.IO framing per Engine.IO session: CONNECT to "/" (any
 * other namespace gets CONNECT_ERROR "Invalid namespace"), DISCONNECT, and
 * the translation between events and session requests:
 *   emit("subscribe", ["BTC-USD"] | {symbols, resume, epoch, history}, ack)
 *     -> {"op":"subscribe",...,"id":<ack id>} ; the reply comes back as the
 *     ack: the native ack object, or {"error":{code,message,...}}
 *   emit("unsubscribe", ...) and any other op alike;
 * and the frames the session hands out become events named after their op:
 * "snapshot" (with "reset":true for a reset), "replay", "update", "history".
 * An error reply to an event without an ack is emitted as event "error".
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_SIO_H
#define TICKERD_SIO_H

#include "tickerd/eio.h"
#include "tickerd/session.h"

/* The eio_upper for Socket.IO; its arg is the sess_server. */
const eio_upper *sio_upper(void);

#endif
