//! The WebSocket ops: `js/websocket.js` keeps the Workers API (WebSocketPair, accept, send,
//! close, events) and calls these with plain values; the frames travel through the worker's
//! state (`host`) to the front, which owns the connection.

use super::{bytes_of, headers_arg, host, request_id, string_arg};
use crate::job::SocketFrame;

/// `wsAccept(requestId, [name, value, ...])`: the app answered the request with a 101 and the
/// client end of a WebSocketPair. Answers the socket's id, or undefined when the request is not
/// a WebSocket upgrade (the request is then answered with the error).
pub(super) fn op_ws_accept(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = request_id(scope, &args);
    let headers = headers_arg(scope, args.get(1));
    let accepted = host::state(scope).borrow_mut().accept_socket(id, headers);
    if let Ok(socket) = accepted {
        rv.set(v8::Number::new(scope, socket as f64).into());
    }
}

/// `wsSend(socket, data)`: a text (string) or binary (bytes) message to the client. Answers 0
/// when it is on its way, 1 when the socket is closing or gone, 2 when the client has not read
/// enough of what was sent before (the socket is then closed with 1011).
pub(super) fn op_ws_send(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let socket = args.get(0).integer_value(scope).unwrap_or(0) as u64;
    let data = args.get(1);
    let frame = if data.is_string() {
        SocketFrame::Text(data.to_rust_string_lossy(scope))
    } else {
        SocketFrame::Binary(bytes_of(data).unwrap_or_default().into())
    };
    let sent = host::state(scope).borrow_mut().socket_send(socket, frame);
    rv.set_uint32(match sent {
        host::SocketSend::Sent => 0,
        host::SocketSend::Closed => 1,
        host::SocketSend::Overflow => 2,
    });
}

/// `wsClose(socket, code, reason)`: the app's close frame (code and reason checked in JS).
pub(super) fn op_ws_close(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let socket = args.get(0).integer_value(scope).unwrap_or(0) as u64;
    let code = args.get(1).uint32_value(scope).unwrap_or(1000) as u16;
    let reason = string_arg(scope, &args, 2);
    host::state(scope)
        .borrow_mut()
        .close_socket(socket, code, &reason);
}
