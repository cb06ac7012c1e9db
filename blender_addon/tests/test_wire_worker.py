"""How the worker sends frames (outside Blender): paths and output_dir to a loopback daemon that offers them,
bytes to a remote daemon or one that refuses the paths; output frames the daemon wrote are not written twice."""
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vidprior"))

from wire.client import DaemonError  # noqa: E402
from wire.worker import JobTask  # noqa: E402


class FakeClient:
    """Answers like a daemon: refuses path fields listed in `refuse` (field name), then sends one frame + done."""

    def __init__(self, capabilities, refuse=(), writes_output=False):
        self.welcome = {"capabilities": list(capabilities)}
        self.refuse, self.writes_output = refuse, writes_output
        self.submits, self.events = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, kind, params, frames, edits=None, name=None, output_dir=None):
        self.submits.append({"frames": frames, "output_dir": output_dir})
        if output_dir and "output_dir" in self.refuse:
            raise DaemonError("E_FORBIDDEN_PATH", "no", {"field": "output_dir"})
        if "path" in frames[0] and "frames[0].path" in self.refuse:
            raise DaemonError("E_FORBIDDEN_PATH", "no", {"field": "frames[0].path"})
        if output_dir and self.writes_output:
            with open(os.path.join(output_dir, "a.png"), "wb") as f:
                f.write(b"daemon")
        self.events = [{"type": "frame", "index": 0, "name": "a.png", "png": b"socket"},
                       {"type": "done", "outputs": {}}]
        return {"id": "j-1"}

    def next_event(self, timeout):
        return self.events.pop(0) if self.events else None

    def cancel(self, job):
        pass


class Worker(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="worker-test-")
        self.frame = os.path.join(self.work, "f.png")
        with open(self.frame, "wb") as f:
            f.write(b"png bytes")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def run_task(self, fake, host="127.0.0.1"):
        out = os.path.join(self.work, "out")
        task = JobTask({"host": host}, "stylize", {}, [("a.png", self.frame)], out)
        task.client = lambda: fake
        task.work()
        with open(os.path.join(out, "a.png"), "rb") as f:
            return task, f.read()

    def test_loopback_sends_paths_and_names_the_output_folder(self):
        fake = FakeClient(["paths", "output_dir"], writes_output=True)
        task, written = self.run_task(fake)
        self.assertEqual((task.transport, task.daemon_writes), ("paths", True))
        self.assertEqual(fake.submits[0]["frames"], [{"name": "a.png", "path": self.frame}])
        self.assertEqual(written, b"daemon", "the daemon's own output is not written again from the socket")

    def test_output_dir_refused_keeps_paths(self):
        fake = FakeClient(["paths", "output_dir"], refuse=("output_dir",))
        task, written = self.run_task(fake)
        self.assertEqual((task.transport, task.daemon_writes), ("paths", False))
        self.assertEqual(len(fake.submits), 2)
        self.assertEqual(written, b"socket")

    def test_paths_refused_falls_back_to_bytes(self):
        fake = FakeClient(["paths", "output_dir"], refuse=("frames[0].path",))
        task, _ = self.run_task(fake)
        self.assertEqual(task.transport, "bytes")
        self.assertEqual(fake.submits[-1]["frames"], [{"name": "a.png", "png": b"png bytes"}])

    def test_remote_daemon_gets_bytes(self):
        fake = FakeClient(["paths", "output_dir"])
        task, _ = self.run_task(fake, host="192.0.2.7")
        self.assertEqual(task.transport, "bytes")
        self.assertEqual(len(fake.submits), 1)


class FlakyUploads:
    """A remote daemon with a 1 KiB message limit whose first upload connection drops after one chunk, and
    which refuses the first reconnect (not back yet): the upload goes on from its offset on the third."""

    opened = []

    def __init__(self):
        self.welcome = {"capabilities": ["upload"], "limits": {"max_message_bytes": 1024}}
        self.submits = []

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        return False

    def open(self):
        FlakyUploads.opened.append(self)
        if len(FlakyUploads.opened) == 2:
            raise DaemonError("E_CONNECTION", "not back yet")
        return self

    def close(self):
        pass

    def upload(self, data, name=None, resume=None, on_progress=None):
        received = UPLOADED.get(resume, 0)
        on_progress({"upload": "u-1", "received": received})
        if len(FlakyUploads.opened) == 1:
            UPLOADED["u-1"] = 4
            raise DaemonError("E_CONNECTION", "lost the connection")
        self.resumed_from = (resume, received)
        return "u-1"

    def submit(self, kind, params, frames, edits=None, name=None, output_dir=None):
        self.submits.append(frames)
        return {"id": "j-2"}

    def next_event(self, timeout):
        return {"type": "done", "outputs": {}}


UPLOADED = {}


class Uploads(unittest.TestCase):
    def test_lost_connection_and_a_refused_reconnect_resume_the_upload(self):
        work = tempfile.mkdtemp(prefix="worker-test-")
        try:
            frame = os.path.join(work, "f.png")
            with open(frame, "wb") as f:
                f.write(b"x" * 2048)
            FlakyUploads.opened.clear()
            task = JobTask({"host": "192.0.2.7"}, "stylize", {}, [("a.png", frame)], os.path.join(work, "out"))
            task.client = FlakyUploads
            task.work()
            last = FlakyUploads.opened[-1]
            self.assertEqual(len(FlakyUploads.opened), 3)
            self.assertEqual((task.transport, task.reconnects), ("upload", 1))
            self.assertEqual(last.resumed_from, ("u-1", 4))
            self.assertEqual(last.submits, [[{"name": "a.png", "upload": "u-1"}]])
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
