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


if __name__ == "__main__":
    unittest.main()
