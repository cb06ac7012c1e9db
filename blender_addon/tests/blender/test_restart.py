"""Kill the daemon mid-job, restart it: the add-on re-attaches to the job by its id and places the result over
its strip, even renamed (issue 10). Runs where the built daemon and node are at hand (the host, not a chroot)."""
import glob
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import bpy
from strip_scene import image_strip_scene

ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")
state = importlib.import_module(ADDON + ".state")
DATA = os.environ["VIDPRIOR_TEST_DATA"]
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
MAIN = os.path.join(ROOT, "dist", "cli", "main.js")
FRAMES = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """`vidprior serve` on `port` with its own data dir, started and killed by the test."""

    def __init__(self, port, data_dir):
        self.port, self.data_dir, self.process = port, data_dir, None

    def start(self):
        env = dict(os.environ)
        env.setdefault("VIDPRIOR_CACHE_DIR", os.path.join(DATA, "restart-cache"))
        log = open(os.path.join(DATA, "restart-daemon.log"), "ab")
        self.process = subprocess.Popen(
            [shutil.which("node"), MAIN, "serve", "--port", str(self.port), "--data-dir", self.data_dir, "--ep", "cpu",
             "--allow-dir", DATA], env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the daemon did not listen on %d" % self.port)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@unittest.skipUnless(shutil.which("node") and os.path.isfile(MAIN), "needs node and the built daemon (host runs)")
class DaemonRestart(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(free_port(), os.path.join(DATA, "restart-data-" + self._testMethodName))
        self.daemon.start()
        bpy.context.preferences.addons[ADDON].preferences.port = self.daemon.port

    def tearDown(self):
        self.daemon.kill()
        bpy.context.preferences.addons[ADDON].preferences.port = int(os.environ["VIDPRIOR_TEST_PORT"])

    def test_daemon_killed_mid_job_then_reattach_places_the_strip(self):
        scene, editor, strip = image_strip_scene("restart", FRAMES, prompt="ink", strength=1.0, steps=40, seed=0,
                                                 adapter="")
        s = scene.vidprior

        def kill(job_id):
            time.sleep(0.5)
            self.daemon.kill()

        self.stylize_and_kill(kill)
        self.assertTrue(s.job_pending, s.job_status)
        job_id = s.job_id
        self.assertTrue(job_id)
        # The daemon comes back (the job resumes there); the strip was renamed meanwhile.
        self.daemon.start()
        strip.name = "restart renamed"
        before = {x.name for x in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.reattach(), {"FINISHED"}, s.job_status)
        added = [x for x in compat.all_strips(editor) if x.name not in before]
        self.assertEqual(len(added), 1)
        self.assertEqual(compat.strip_range(added[0]), compat.strip_range(strip))
        self.assertEqual(len(added[0].elements), len(FRAMES))
        self.assertFalse(s.job_pending)
        self.assertEqual(s.job_id, job_id)

    def stylize_and_kill(self, kill):
        """Runs Stylize Strip (blocking, as in `-b`) while a thread beside it calls kill(job_id) once the job is
        accepted; the operator then fails with E_CONNECTION. The thread reads only the worker task and the
        daemon's files, never bpy."""
        killed = threading.Event()

        def kill_once_running():
            while not killed.is_set():
                job = state.current()
                if job is not None and not job.ended and job.task.job_id:
                    kill(job.task.job_id)
                    killed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_once_running)
        killer.start()
        try:
            with self.assertRaisesRegex(RuntimeError, "E_CONNECTION"):
                bpy.ops.vidprior.stylize_strip()
        finally:
            killed.set()
            killer.join()

    def unfinished_starts(self, job_id):
        try:
            with open(os.path.join(self.daemon.data_dir, "jobs", job_id, "state.json")) as f:
                return json.load(f).get("unfinished_starts", 0)
        except (OSError, ValueError):
            return 0

    def kill_when_started(self, job_id, starts, timeout=60):
        """Kills the daemon once the job's durable record counts `starts` starts (it is running)."""
        deadline = time.monotonic() + timeout
        while self.unfinished_starts(job_id) < starts:
            if time.monotonic() > deadline:
                raise AssertionError("job %s never started %d times" % (job_id, starts))
            time.sleep(0.05)
        self.daemon.kill()

    def test_job_that_crashed_the_daemon_twice_is_reported_with_a_hint(self):
        scene, _, _ = image_strip_scene("crash", FRAMES, prompt="ink", strength=1.0, steps=400, seed=0, adapter="")
        s = scene.vidprior
        self.stylize_and_kill(lambda job_id: self.kill_when_started(job_id, 1))
        job_id = s.job_id
        # The restarted daemon resumes the job and dies in it again (as when it runs out of memory).
        self.daemon.start()
        self.kill_when_started(job_id, 2)
        # The third start fails it with E_CRASHED: re-attaching reports that clearly, with what to do.
        self.daemon.start()
        with self.assertRaisesRegex(RuntimeError, r"vidprior stylize failed: the daemon died twice .*lower the "
                                                  r"Working Size.* \(E_CRASHED\)"):
            bpy.ops.vidprior.reattach()
        self.assertEqual(state.current().error[0], "E_CRASHED")
        self.assertTrue(s.job_status.startswith("E_CRASHED: "), s.job_status)
        self.assertFalse(s.job_pending)


if __name__ == "__main__":
    unittest.main()
