"""The right pictures (issue 10): frames sent are the strip's own pixels whatever its Fit mode, mute, opacity or
blend; the result strip lines up with the source in a render; only the frames needed are rendered; frame step
2 works; a strength × steps that leaves no step is refused before anything is rendered."""
import glob
import importlib
import os
import shutil
import tempfile
import unittest

import bpy

ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")
frames = importlib.import_module(ADDON + ".frames")
DATA = os.environ["VIDPRIOR_TEST_DATA"]
PORT = int(os.environ["VIDPRIOR_TEST_PORT"])
CLIP = os.path.join(DATA, "clip.mp4")  # 64x48, 6 frames


def fresh_scene(width=100, height=100):
    scene = bpy.context.scene
    editor = compat.ensure_sequence_editor(scene)
    for strip in list(compat.all_strips(editor)):
        compat.strips_collection(editor).remove(strip)
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.frame_step = 1
    s = scene.vidprior
    s.prompt, s.strength, s.steps, s.guidance, s.seed = "a watercolor painting", 0.5, 4, 7.5, 0
    s.output_folder = os.path.join(DATA, "out")
    s.edits.clear()
    s.adapter = ""
    return scene, editor


def movie(editor, fit="ORIGINAL", channel=1):
    return compat.strips_collection(editor).new_movie(name="clip " + fit, filepath=CLIP, channel=channel,
                                                      frame_start=1, fit_method=fit)


def pixels(path):
    image = bpy.data.images.load(path)
    try:
        return tuple(image.size), list(image.pixels[:])
    finally:
        bpy.data.images.remove(image)


def render_frame(scene, frame, path):
    """The sequencer's picture of `frame` at the scene's size, pixels unchanged by the view transform."""
    saved = compat.set_standard_view(scene)
    try:
        compat.set_png_output(scene)
        scene.render.use_sequencer = True
        scene.frame_set(frame)
        scene.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=scene.name)
    finally:
        compat.restore_view(scene, saved)
    return pixels(path)


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


class RenderCounter:
    def __enter__(self):
        self.count = 0
        bpy.app.handlers.render_post.append(self.on_render)
        return self

    def on_render(self, *args):
        self.count += 1

    def __exit__(self, *exc):
        bpy.app.handlers.render_post.remove(self.on_render)


class Pictures(unittest.TestCase):
    def setUp(self):
        bpy.context.preferences.addons[ADDON].preferences.port = PORT
        self.work = tempfile.mkdtemp(prefix="pictures-", dir=DATA)

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def reference(self, frame):
        """Frame `frame` of the clip as Blender decodes it, at its own size (64x48), nothing else on screen."""
        scene, editor = fresh_scene(64, 48)
        movie(editor, "ORIGINAL")
        return render_frame(scene, frame, os.path.join(self.work, "reference.png"))

    def test_frames_sent_are_the_strip_pixels_and_the_result_lines_up(self):
        for fit in ("FIT", "FILL", "STRETCH", "ORIGINAL"):
            with self.subTest(fit=fit):
                size, expected = self.reference(3)
                scene, editor = fresh_scene(100, 90)
                source = movie(editor, fit)
                source.blend_alpha, source.blend_type, source.mute = 0.5, "ADD", True  # none of it is the source
                workdir = os.path.join(self.work, fit)
                os.makedirs(workdir)
                sent = frames.strip_frame_files(scene, source, workdir, only_frames=[3])
                self.assertEqual([f for f, _ in sent], [3])
                got_size, got = pixels(sent[0][1])
                self.assertEqual(got_size, size)
                self.assertLess(max_diff(got, expected), 2 / 255, "frames sent differ from the strip's pixels")
                # The result (here the same pictures) placed with the strip's transform covers the same pixels.
                source.blend_alpha, source.blend_type, source.mute = 1.0, "ALPHA_OVER", False
                result = frames.add_result_strip(scene, source, workdir, [os.path.basename(sent[0][1])],
                                                 frame_start=3)
                result.mute = True
                _, seen_source = render_frame(scene, 3, os.path.join(self.work, fit + "-source.png"))
                result.mute, source.mute = False, True
                _, seen_result = render_frame(scene, 3, os.path.join(self.work, fit + "-result.png"))
                self.assertLess(max_diff(seen_source, seen_result), 2 / 255, "the result strip does not line up")

    def test_preview_renders_only_the_current_frame(self):
        scene, editor = fresh_scene(64, 48)
        strip = movie(editor)
        editor.active_strip = strip
        scene.vidprior.candidates = 1
        scene.frame_set(4)
        with RenderCounter() as renders:
            self.assertEqual(bpy.ops.vidprior.preview_edits(), {"FINISHED"}, scene.vidprior.job_status)
        self.assertEqual(renders.count, 1)

    def test_frame_step_two_works(self):
        scene, editor = fresh_scene(64, 48)
        strip = movie(editor)
        editor.active_strip = strip
        scene.frame_step = 2
        before = {x.name for x in compat.all_strips(editor)}
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, scene.vidprior.job_status)
        added = [x for x in compat.all_strips(editor) if x.name not in before]
        self.assertEqual(len(added), 1)
        self.assertEqual(len(added[0].elements), 6)
        self.assertEqual(scene.frame_step, 2)
        # The frames rendered for the job are removed once it is over.
        self.assertEqual(glob.glob(os.path.join(scene.vidprior.output_folder, "vidprior-frames-*")), [])

    def test_too_few_steps_for_the_strength_is_refused_before_rendering(self):
        scene, editor = fresh_scene(64, 48)
        strip = movie(editor)
        editor.active_strip = strip
        scene.vidprior.steps, scene.vidprior.strength = 1, 0.5
        with RenderCounter() as renders:
            with self.assertRaisesRegex(RuntimeError, "no denoising step"):
                bpy.ops.vidprior.stylize_strip()
        self.assertEqual(renders.count, 0)


if __name__ == "__main__":
    unittest.main()
