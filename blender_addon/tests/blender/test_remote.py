"""A strip whose frames do not fit in one message stylizes from a daemon the add-on treats as remote (issue 10):
the harness starts one on 127.0.0.2 with a token and 1 MiB messages and writes its address to remote.json; the
add-on sends no paths there (127.0.0.2 is not a loopback host to it), so three 600×400 noise frames (~2 MB) go as
chunked uploads, and the status line says so while they do."""
import glob
import importlib
import json
import os
import queue
import unittest

import bpy
from strip_scene import image_strip_scene

ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")
state = importlib.import_module(ADDON + ".state")
status = importlib.import_module(ADDON + ".status")
worker = importlib.import_module(ADDON + ".wire.worker")
DATA = os.environ["VIDPRIOR_TEST_DATA"]
REMOTE = os.path.join(DATA, "remote.json")
NOISE = sorted(glob.glob(os.path.join(DATA, "noise", "*.png")))


@unittest.skipUnless(os.path.isfile(REMOTE) and NOISE, "the harness started no remote daemon (remote.json)")
class RemoteDaemon(unittest.TestCase):
    def setUp(self):
        with open(REMOTE) as f:
            remote = json.load(f)
        self.prefs = bpy.context.preferences.addons[ADDON].preferences
        self.saved = (self.prefs.host, self.prefs.port, self.prefs.token)
        self.prefs.host, self.prefs.port, self.prefs.token = remote["host"], remote["port"], remote["token"]

    def tearDown(self):
        self.prefs.host, self.prefs.port, self.prefs.token = self.saved

    def test_strip_over_the_message_limit_goes_as_chunked_uploads(self):
        scene, editor, strip = image_strip_scene("remote", NOISE, prompt="noise", strength=0.5, steps=2, seed=0,
                                                 adapter="", style_lora="", work_size=0)
        s = scene.vidprior
        self.assertGreater(sum(os.path.getsize(f) for f in NOISE), 1024 * 1024)
        # The status bar's text after every event: the worker's events reach the main thread one per pump.
        phases = []
        real_pump, real_drain = state.pump, worker.Task.drain

        def one_event(task):
            try:
                return [task.events.get_nowait()]
            except queue.Empty:
                return []

        def pump_and_watch():
            running = real_pump()
            job = state.current()
            if job is not None and job.phase:
                phases.append(status.eta_text(job))
            return running

        state.pump, worker.Task.drain = pump_and_watch, one_event
        try:
            before = {x.name for x in compat.all_strips(editor)}
            self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, s.job_status)
        finally:
            state.pump, worker.Task.drain = real_pump, real_drain
        job = state.current()
        self.assertEqual(job.task.transport, "upload")
        shown = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
        self.assertEqual(shown, ["stylize: uploading frames %d/%d" % (i + 1, len(NOISE)) for i in range(len(NOISE))])
        added = [x for x in compat.all_strips(editor) if x.name not in before]
        self.assertEqual(len(added), 1)
        self.assertEqual(compat.strip_range(added[0]), compat.strip_range(strip))
        self.assertEqual(len(added[0].elements), len(NOISE))


if __name__ == "__main__":
    unittest.main()
