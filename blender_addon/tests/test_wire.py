"""The add-on's wire code against the protocol's example exchanges (protocol/examples/*.json), outside Blender."""
import base64
import glob
import json
import os
import socket
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vidprior"))

from wire import msgpack  # noqa: E402
from wire.client import Client, DaemonError  # noqa: E402
from wire.websocket import connect, _mask  # noqa: E402

EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "..", "protocol", "examples", "*.json")))


def from_json(value):
    """Example JSON → the Python value the wire carries ({"$bin": base64} → bytes)."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def normalise(value):
    """JSON cannot tell 1.0 from 1 and neither can JavaScript: compare numbers by value."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class ExampleExchanges(unittest.TestCase):
    def test_examples_exist(self):
        self.assertGreaterEqual(len(EXAMPLES), 5, "protocol/examples/*.json not found")

    def test_every_example_decodes_and_round_trips(self):
        for path in EXAMPLES:
            with open(path) as f:
                example = json.load(f)
            for i, step in enumerate(example["steps"]):
                if "msgpack_hex" not in step or step.get("raw"):
                    continue
                with self.subTest(example=os.path.basename(path), step=i):
                    expected = normalise(from_json(step["message"]))
                    decoded = msgpack.unpackb(bytes.fromhex(step["msgpack_hex"]))
                    self.assertEqual(normalise(decoded), expected)
                    self.assertEqual(normalise(msgpack.unpackb(msgpack.packb(expected))), expected)


class Msgpack(unittest.TestCase):
    def test_all_widths(self):
        values = [0, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63, -1, -32, -33, -128, -129, -32768, -2**31 - 1,
                  -2**63,
                  1.5, -0.0, "", "x" * 31, "y" * 32, "z" * 300, "é" * 70000, b"", b"\x00" * 300, b"\x01" * 70000,
                  [], list(range(20)), {}, {str(i): i for i in range(20)}, None, True, False]
        for v in values:
            self.assertEqual(msgpack.unpackb(msgpack.packb(v)), v)

    def test_refuses_garbage(self):
        for bad in (b"", b"\xc1", b"\x92\x01", b"\xd9\x05ab", b"\xc7\x01\x00\x00"):
            with self.assertRaises(msgpack.MsgpackError):
                msgpack.unpackb(bad)
        with self.assertRaises(msgpack.MsgpackError):
            msgpack.unpackb(msgpack.packb(1) + b"\x00")

    def test_mask_is_an_involution(self):
        data = bytes(range(256)) * 5 + b"tail"
        self.assertEqual(_mask(_mask(data, b"abcd"), b"abcd"), data)


class NoDaemon(unittest.TestCase):
    def test_unreachable_daemon_is_a_clear_error(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        with self.assertRaises(DaemonError) as ctx:
            Client("127.0.0.1", port, timeout=2).open()
        self.assertEqual(ctx.exception.code, "E_CONNECTION")
        self.assertIn("vidprior serve", str(ctx.exception))

    def test_non_websocket_server_is_refused(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def answer():
            conn, _ = srv.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            conn.close()

        t = threading.Thread(target=answer)
        t.start()
        with self.assertRaises(Exception) as ctx:
            connect("127.0.0.1", port, timeout=2)
        t.join()
        srv.close()
        self.assertIn("refused the websocket upgrade", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
