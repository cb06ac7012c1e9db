"""The add-on inside a real Blender (-b) against a real daemon with the embedded default model."""
import glob
import importlib
import os
import socket
import threading
import unittest

import bpy

# The add-on's module: "vidprior" (legacy install) or "bl_ext.user_default.vidprior" (extension).
ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")
state = importlib.import_module(ADDON + ".state")
client_module = importlib.import_module(ADDON + ".wire.client")
DATA = os.environ["VIDPRIOR_TEST_DATA"]
PORT = int(os.environ["VIDPRIOR_TEST_PORT"])


def fresh_scene():
    scene = bpy.context.scene
    editor = compat.ensure_sequence_editor(scene)
    for strip in list(compat.all_strips(editor)):
        compat.strips_collection(editor).remove(strip)
    s = scene.vidprior
    s.prompt, s.strength, s.steps, s.guidance, s.seed = "a watercolor painting", 0.5, 4, 7.5, 0
    s.output_folder = os.path.join(DATA, "out")
    s.style_lora = ""
    s.edits.clear()
    s.adapter = ""
    s.work_size = 0
    return scene, editor


def image_strip(editor, name, files, channel, start):
    return compat.new_image_strip(editor, name, os.path.dirname(files[0]), [os.path.basename(f) for f in files],
                                  channel, start)


def select(editor, strip):
    for other in compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip


def job_params(job_id):
    """The params the daemon holds for a job (its JobDetail, defaults filled in)."""
    with client_module.Client("127.0.0.1", PORT) as c:
        return c.get_job(job_id)["params"]


def new_strips(editor, before):
    return [s for s in compat.all_strips(editor) if s.name not in before]


class Stylize(unittest.TestCase):
    def setUp(self):
        bpy.context.preferences.addons[ADDON].preferences.port = PORT

    def check_result(self, editor, source, before):
        added = new_strips(editor, before)
        self.assertEqual(len(added), 1, "one new strip expected")
        result = added[0]
        self.assertEqual(result.type, "IMAGE")
        self.assertEqual(compat.strip_range(result), compat.strip_range(source))
        self.assertGreater(result.channel, source.channel)
        start, end = compat.strip_range(source)
        self.assertEqual(len(result.elements), end - start)
        for element in result.elements:
            self.assertTrue(os.path.isfile(os.path.join(bpy.path.abspath(result.directory), element.filename)))

    def test_image_strip(self):
        scene, editor = fresh_scene()
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "shot", files, 2, 10)
        select(editor, strip)
        before = {s.name for s in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, scene.vidprior.job_status)
        self.check_result(editor, strip, before)
        # On the daemon's machine, frames go as paths and the daemon writes the results into the output folder.
        task = state.current().task
        self.assertEqual(task.transport, os.environ.get("VIDPRIOR_TEST_TRANSPORT", "paths"))
        self.assertEqual(task.daemon_writes, task.transport == "paths")

    def test_movie_strip(self):
        scene, editor = fresh_scene()
        self.view_transform = scene.view_settings.view_transform
        self.frame_range = (scene.frame_start, scene.frame_end)
        strip = compat.strips_collection(editor).new_movie(name="clip", filepath=os.path.join(DATA, "clip.mp4"),
                                                           channel=1, frame_start=1)
        select(editor, strip)
        before = {s.name for s in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, scene.vidprior.job_status)
        self.check_result(editor, strip, before)
        # Rendering the strip alone left the scene's own settings as they were.
        self.assertEqual(scene.view_settings.view_transform, self.view_transform)
        self.assertEqual((scene.frame_start, scene.frame_end), self.frame_range)

    def test_cancel_leaves_blender_usable(self):
        scene, editor = fresh_scene()
        scene.vidprior.steps, scene.vidprior.strength = 999, 1.0  # far longer than the test waits
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "long", files, 2, 1)
        select(editor, strip)
        before = {s.name for s in compat.all_strips(editor)}
        stop = threading.Event()

        def cancel_once_accepted():
            # Runs beside the blocking operator; touches only the worker task (thread-safe), never bpy.
            while not stop.is_set():
                job = state.current()
                if job is not None and not job.ended and job.task.job_id:
                    job.task.cancel()
                    return
                stop.wait(0.05)

        canceller = threading.Thread(target=cancel_once_accepted)
        canceller.start()
        try:
            self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"CANCELLED"})
        finally:
            stop.set()
            canceller.join()
        self.assertEqual(state.current().error[0], "E_CANCELLED")
        self.assertEqual(new_strips(editor, before), [])
        # Blender still works: a short job runs to the end.
        scene.vidprior.steps, scene.vidprior.strength = 4, 0.5
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, scene.vidprior.job_status)

    def test_daemon_down_gives_a_clear_report(self):
        scene, editor = fresh_scene()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
        s.close()
        bpy.context.preferences.addons[ADDON].preferences.port = closed_port
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "down", files, 2, 1)
        select(editor, strip)
        # An ERROR report from an operator called by a script surfaces as RuntimeError with the report's text.
        with self.assertRaisesRegex(RuntimeError, r"cannot reach the vidprior daemon .*vidprior serve.*E_CONNECTION"):
            bpy.ops.vidprior.stylize_strip()
        code, message = state.current().error
        self.assertEqual(code, "E_CONNECTION")
        self.assertIn("vidprior serve", message)
        self.assertIn("E_CONNECTION", scene.vidprior.job_status)

    def test_style_lora_field_becomes_params_loras(self):
        scene, _ = fresh_scene()
        s = scene.vidprior
        operators = importlib.import_module(ADDON + ".operators")
        s.style_lora, s.style_lora_weight = "//loras/ink.safetensors", 0.5
        path = bpy.path.abspath("//loras/ink.safetensors")
        self.assertEqual(operators._common_params(s, 0.5)["loras"], [{"path": path, "weight": 0.5}])
        s.style_lora = "house-style"
        self.assertEqual(operators._common_params(s, 0.5)["loras"], [{"name": "house-style", "weight": 0.5}])
        s.style_lora = ""
        self.assertNotIn("loras", operators._common_params(s, 0.5))

    def test_no_strip_selected_is_reported(self):
        scene, editor = fresh_scene()
        editor.active_strip = None
        with self.assertRaisesRegex(RuntimeError, "Select a movie or image strip"):
            bpy.ops.vidprior.stylize_strip()

    def test_method_preview_pick_finetune_stylize(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.iterations, s.finetune_frames, s.candidates = 3, 2, 2
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "method", files, 2, 20)
        select(editor, strip)
        # 1. Candidates for the current frame (strip frame 1).
        scene.frame_set(21)
        self.assertEqual(bpy.ops.vidprior.preview_edits(), {"FINISHED"}, s.job_status)
        self.assertEqual(len(s.candidate_list), 2)
        self.assertEqual(sorted(c.seed for c in s.candidate_list), [0, 1])
        for c in s.candidate_list:
            self.assertIsNotNone(bpy.data.images.get(c.image_name))
        s.candidate_index = 1
        self.assertEqual(bpy.ops.vidprior.use_candidate(), {"FINISHED"})
        self.assertEqual([(e.frame, os.path.basename(e.path)) for e in s.edits], [(1, "candidate-1-seed1.png")])
        # 2. Fine-tune toward it: the adapter becomes the panel's choice. The panel's Working Size goes along.
        s.work_size = 40
        self.assertEqual(bpy.ops.vidprior.finetune_strip(), {"FINISHED"}, s.job_status)
        self.assertEqual(job_params(s.job_id)["work_size"], 40)
        adapter = state.current().result
        self.assertTrue(adapter)
        self.assertIn(adapter, state.known_adapters())
        self.assertEqual(s.adapter, adapter)
        # 3. Stylize with the adapter.
        before = {x.name for x in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, s.job_status)
        self.check_result(editor, strip, before)

    def test_working_size_reaches_the_daemon(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "worksize", files, 2, 80)
        select(editor, strip)
        # 0 = the model's native size: nothing is sent, the daemon picks its default.
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, s.job_status)
        self.assertNotIn("work_size", state.current().task.params)
        s.work_size = 40
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, s.job_status)
        self.assertEqual(job_params(s.job_id)["work_size"], 40)
        s.candidates = 1
        scene.frame_set(81)
        self.assertEqual(bpy.ops.vidprior.preview_edits(), {"FINISHED"}, s.job_status)
        self.assertEqual(job_params(s.job_id)["work_size"], 40)

    def test_whole_method_in_one_click(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.iterations, s.finetune_frames, s.work_size = 3, 2, 40
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        strip = image_strip(editor, "oneclick", files, 2, 40)
        select(editor, strip)
        before = {x.name for x in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.run_method(), {"FINISHED"}, s.job_status)
        self.check_result(editor, strip, before)
        self.assertEqual(job_params(s.job_id)["work_size"], 40)  # the run job (after its keyframe edit)

    def test_test_connection(self):
        self.assertEqual(bpy.ops.vidprior.test_connection(), {"FINISHED"})
        info = state.last_info()
        self.assertEqual(info["welcome"]["protocol"], 1)

    def test_deflicker_pair_of_strips(self):
        scene, editor = fresh_scene()
        files = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))
        names = [os.path.basename(f) for f in files]
        source = compat.new_image_strip(editor, "plate", os.path.dirname(files[0]), names, 2, 60)
        styled = compat.new_image_strip(editor, "plate styled", os.path.dirname(files[0]), list(reversed(names)), 3, 60)
        # The active strip is the processed one; its source is found below it over the same frames.
        select(editor, styled)
        before = {x.name for x in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.deflicker_strips(width=4, scales=3, epochs=1, working_size=16), {"FINISHED"},
                         scene.vidprior.job_status)
        self.check_result(editor, styled, before)
        # Two other strips selected: which one is the source is ambiguous.
        other = compat.new_image_strip(editor, "other", os.path.dirname(files[0]), names, 5, 60)
        select(editor, styled)
        source.select = other.select = True
        with self.assertRaisesRegex(RuntimeError, "select only the processed strip"):
            bpy.ops.vidprior.deflicker_strips(width=4, scales=3, epochs=1)


if __name__ == "__main__":
    unittest.main()
