"""A small RFC 6455 websocket client on the standard library (socket, base64, hashlib, os).

Official Blender builds ship no websocket module, so the add-on carries this one. It speaks what the vidprior
daemon needs: one connection, binary and text messages, fragmentation, ping/pong, close, timeouts.
It is used from the add-on's worker thread only.
"""
import base64
import hashlib
import os
import socket
import struct

__all__ = ["WebSocket", "WebSocketError", "ConnectionClosed", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(ConnectionError):
    pass


class ConnectionClosed(WebSocketError):
    def __init__(self, code=None, reason=""):
        super().__init__("connection closed" + (" (%s %s)" % (code, reason) if code else ""))
        self.code = code
        self.reason = reason


def _mask(payload, key):
    # XOR through big integers: ~100x faster than a Python loop over a PNG-sized payload.
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


class WebSocket:
    def __init__(self, sock, max_message=512 * 1024 * 1024):
        self._sock = sock
        self._buf = bytearray()
        self.max_message = max_message
        self.closed = False

    # -- sending ---------------------------------------------------------------------------------------
    def send_binary(self, data):
        self._send_frame(OP_BINARY, bytes(data))

    def send_text(self, text):
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def ping(self, data=b""):
        self._send_frame(OP_PING, data)

    def close(self, code=1000, reason=""):
        if not self.closed:  # a connection the daemon closed still has its socket to close
            try:
                self._send_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode("utf-8")[:120])
            except OSError:
                pass
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    def _send_frame(self, opcode, payload):
        if self.closed:
            raise ConnectionClosed()
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 0x10000:
            header.append(0x80 | 126)
            header += struct.pack(">H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", n)
        key = os.urandom(4)
        header += key
        self._sock.sendall(bytes(header) + _mask(payload, key))

    # -- receiving -------------------------------------------------------------------------------------
    def recv(self, timeout=None):
        """Returns the next whole message (bytes for binary, str for text). Answers pings by itself.
        Raises socket.timeout when nothing complete arrived in `timeout` seconds."""
        self._sock.settimeout(timeout)
        parts = []
        msg_opcode = None
        size = 0
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self.close(code or 1000)
                raise ConnectionClosed(code, reason)
            if opcode in (OP_TEXT, OP_BINARY):
                if msg_opcode is not None:
                    raise WebSocketError("new message started before the last one finished")
                msg_opcode = opcode
            elif opcode == OP_CONT:
                if msg_opcode is None:
                    raise WebSocketError("continuation frame without a message")
            else:
                raise WebSocketError("unknown websocket opcode %d" % opcode)
            parts.append(payload)
            size += len(payload)
            if size > self.max_message:
                raise WebSocketError("message larger than %d bytes" % self.max_message)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if msg_opcode == OP_TEXT else data

    def _read_exact(self, n):
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                self.closed = True
                raise ConnectionClosed(1006, "the daemon closed the connection")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_frame(self):
        b0, b1 = self._read_exact(2)
        fin = bool(b0 & 0x80)
        opcode = b0 & 0x0F
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read_exact(8))[0]
        if n > self.max_message:
            raise WebSocketError("frame larger than %d bytes" % self.max_message)
        key = self._read_exact(4) if b1 & 0x80 else None
        payload = self._read_exact(n)
        if key:
            payload = _mask(payload, key)
        return fin, opcode, payload


def connect(host, port, path="/", timeout=10.0, max_message=512 * 1024 * 1024):
    """Opens a websocket to ws://host:port/path. Raises WebSocketError (or OSError) with a readable message."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as err:
        raise WebSocketError("cannot reach the vidprior daemon at %s:%s (%s): is `vidprior serve` running?" % (
            host, port, err.strerror or err)) from err
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (
        "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)
    )
    sock.sendall(request.encode("ascii"))
    response = bytearray()
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise WebSocketError("the server at %s:%s closed the connection during the websocket handshake" % (
                host, port))
        response += chunk
        if len(response) > 65536:
            sock.close()
            raise WebSocketError("the websocket handshake answer is too long")
    head, _, rest = bytes(response).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        sock.close()
        raise WebSocketError("the server at %s:%s refused the websocket upgrade: %s" % (host, port, lines[0]))
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    if headers.get("sec-websocket-accept") != expected:
        sock.close()
        raise WebSocketError("the server's websocket handshake answer is wrong (Sec-WebSocket-Accept)")
    ws = WebSocket(sock, max_message=max_message)
    ws._buf += rest
    return ws
