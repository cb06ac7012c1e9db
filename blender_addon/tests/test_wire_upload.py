"""Chunked, resumable uploads from the add-on's worker to a real daemon (`node dist/cli/main.js serve`) that the
add-on treats as remote (127.0.0.2 is not in LOOPBACK_HOSTS) and that takes messages of at most 1 MiB: a strip
whose frames do not fit in one submit goes up frame by frame, in chunks, and a connection cut mid-upload is
opened again and the upload goes on from the daemon's offset. Skipped without node or the built daemon."""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vidprior"))

from wire.client import Client  # noqa: E402
from wire.worker import JobTask  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MAIN = os.path.join(ROOT, "dist", "cli", "main.js")
HOST, TOKEN = "127.0.0.2", "upload-test-token"


def noise_png(path, width, height, seed):
    """An RGB PNG of seeded noise: it does not compress, so its size is about width × height × 3."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CuttingProxy:
    """A TCP proxy on HOST that forwards to the daemon and, once, cuts the connection after `cut_after` bytes
    went from the client to the daemon (a lost network mid-upload). Later connections pass untouched."""

    def __init__(self, target_port, cut_after):
        self.target_port, self.cut_after = target_port, cut_after
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.cuts, self.connections = 0, 0
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((HOST, self.target_port))
            self.sockets += [client, server]
            cut = self.cuts == 0 and self.connections == 0
            self.connections += 1
            threading.Thread(target=self._pipe, args=(client, server, self.cut_after if cut else None),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, None), daemon=True).start()

    def _pipe(self, src, dst, cut_after):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if cut_after is not None and sent + len(data) >= cut_after:
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()
        for s in self.sockets:
            s.close()


@unittest.skipUnless(shutil.which("node") and os.path.isfile(MAIN), "needs node and the built daemon (npx tsc)")
class RemoteUpload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="wire-upload-")
        cls.port = free_port(HOST)
        env = dict(os.environ)
        env.setdefault("VIDPRIOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vidprior-test-cache"))
        cls.log_path = os.path.join(cls.work, "daemon.log")
        with open(cls.log_path, "wb") as log:
            cls.daemon = subprocess.Popen(
                [shutil.which("node"), MAIN, "serve", "--host", HOST, "--port", str(cls.port), "--token", TOKEN,
                 "--max-message-mb", "1", "--data-dir", os.path.join(cls.work, "data"), "--ep", "cpu"],
                env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection((HOST, cls.port), timeout=1).close()
                break
            except OSError:
                if cls.daemon.poll() is not None or time.monotonic() > deadline:
                    cls.tearDownClass()
                    raise RuntimeError("the daemon did not start") from None
                time.sleep(0.2)
        # Three 600×400 noise frames (~720 KB each): together over 1 MiB, each more than one 512 KiB chunk.
        cls.frames = []
        for i in range(3):
            path = os.path.join(cls.work, "f%d.png" % i)
            noise_png(path, 600, 400, seed=i)
            cls.frames.append(("%06d.png" % i, path))

    @classmethod
    def tearDownClass(cls):
        if cls.daemon.poll() is None:
            cls.daemon.send_signal(signal.SIGTERM)
            try:
                cls.daemon.wait(30)
            except subprocess.TimeoutExpired:
                cls.daemon.kill()
                cls.daemon.wait()
        shutil.rmtree(cls.work, ignore_errors=True)

    def settings(self, port):
        return {"host": HOST, "port": port, "token": TOKEN, "timeout": 30.0}

    def stylize(self, port, out):
        task = JobTask(self.settings(port), "stylize", {"prompt": "x", "steps": 2, "strength": 0.5, "seed": 0},
                       self.frames, os.path.join(self.work, out), name="upload test")
        task.run()
        events = task.drain()
        ends = [e for e in events if e[0] in ("done", "error")]
        with open(self.log_path, errors="replace") as f:
            log = f.read()[-2000:]
        self.assertEqual(ends[-1][0], "done", "%s\n--- daemon ---\n%s" % (ends, log))
        return task, events

    def test_frames_over_the_message_limit_go_as_chunked_uploads(self):
        with Client(HOST, self.port, TOKEN) as c:
            limit = c.welcome["limits"]["max_message_bytes"]
        self.assertEqual(limit, 1024 * 1024)
        self.assertGreater(sum(os.path.getsize(p) for _, p in self.frames), limit)
        task, events = self.stylize(self.port, "out-plain")
        self.assertEqual(task.transport, "upload")
        stages = [e[1]["stage"] for e in events if e[0] == "progress" and e[1].get("upload")]
        self.assertEqual(stages, ["uploading frames %d/3" % i for i in (1, 2, 3)])
        written = sorted(e[2] for e in events if e[0] == "frame")
        self.assertEqual(written, [name for name, _ in self.frames])
        for name in written:
            self.assertTrue(os.path.getsize(os.path.join(self.work, "out-plain", name)) > 0)

    def test_a_connection_cut_mid_upload_is_resumed_from_the_daemon_offset(self):
        # Cut after ~1.2 MB from the client: inside the second frame's chunks.
        proxy = CuttingProxy(self.port, cut_after=1200 * 1000)
        try:
            task, _ = self.stylize(proxy.port, "out-resumed")
        finally:
            proxy.close()
        self.assertEqual(proxy.cuts, 1)
        self.assertEqual(task.transport, "upload")
        self.assertEqual(task.reconnects, 1)
        self.assertEqual(sorted(os.listdir(os.path.join(self.work, "out-resumed"))), [n for n, _ in self.frames])

    def test_cancel_between_chunks(self):
        task = JobTask(self.settings(self.port), "stylize", {"prompt": "x", "steps": 2, "strength": 0.5},
                       self.frames, os.path.join(self.work, "out-cancel"))
        real_upload = Client.upload

        def cancel_after_first_chunk(conn, data, name=None, resume=None, on_progress=None):
            def progress(state):
                if state["received"] > 0:
                    task.cancel()
                on_progress(state)

            return real_upload(conn, data, name=name, resume=resume, on_progress=progress)

        Client.upload = cancel_after_first_chunk
        try:
            task.run()
        finally:
            Client.upload = real_upload
        ends = [e for e in task.drain() if e[0] in ("done", "error")]
        self.assertEqual(ends, [("error", "E_CANCELLED", "cancelled while uploading frames")])
        self.assertIsNone(task.job_id)


if __name__ == "__main__":
    unittest.main()
