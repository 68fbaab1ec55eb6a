// The same echo for `deno serve` (bench/websocket.py): Deno.upgradeWebSocket.
export default {
  fetch(request) {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  },
};
