"""Add-on state keyed by identity (issue 10): adapters by name, edits and candidates on their strip, jobs by id
(re-attach after a reopen, a daemon restart or a renamed strip), undo keeps the result strip."""
import glob
import importlib
import os
import unittest

import bpy

ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")
state = importlib.import_module(ADDON + ".state")
client_module = importlib.import_module(ADDON + ".wire.client")
DATA = os.environ["VIDPRIOR_TEST_DATA"]
PORT = int(os.environ["VIDPRIOR_TEST_PORT"])
FRAMES = sorted(glob.glob(os.path.join(DATA, "frames", "*.png")))


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
    s.candidate_list.clear()
    s.work_size = 0
    return scene, editor


def image_strip(editor, name, channel, start):
    return compat.new_image_strip(editor, name, os.path.dirname(FRAMES[0]), [os.path.basename(f) for f in FRAMES],
                                  channel, start)


def select(editor, strip):
    for other in compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip


def reopen():
    """Saves the file and opens it again, as a user restarting Blender would; returns the scene."""
    path = os.path.join(DATA, "identity.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    return bpy.context.scene


def strip_named(scene, name):
    return next((s for s in compat.all_strips(scene.sequence_editor) if s.name == name), None)


class Identity(unittest.TestCase):
    def setUp(self):
        bpy.context.preferences.addons[ADDON].preferences.port = PORT

    def test_adapter_choice_is_kept_when_the_list_changes(self):
        scene, _ = fresh_scene()
        state.set_adapters(["shot-b"])
        scene.vidprior.adapter = "shot-b"
        # Test Connection lists another adapter that sorts first: the choice stays "shot-b".
        state.set_adapters(["aaa-other", "shot-b"])
        self.assertEqual(scene.vidprior.adapter, "shot-b")
        self.assertEqual(bpy.ops.vidprior.test_connection(), {"FINISHED"})
        self.assertEqual(scene.vidprior.adapter, "shot-b")
        scene = reopen()
        self.assertEqual(scene.vidprior.adapter, "shot-b")

    def test_candidate_and_edit_belong_to_their_strip_and_frame(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.candidates = 1
        a = image_strip(editor, "shot A", 2, 1)
        image_strip(editor, "shot B", 3, 20)
        select(editor, a)
        scene.frame_set(3)  # strip frame 2 of A
        self.assertEqual(bpy.ops.vidprior.preview_edits(), {"FINISHED"}, s.job_status)
        # Reopening the file forgets the job in memory: the candidate still knows its strip and frame.
        scene = reopen()
        s, editor = scene.vidprior, scene.sequence_editor
        self.assertEqual(bpy.ops.vidprior.use_candidate(), {"FINISHED"})
        self.assertEqual([e.frame for e in s.edits], [2])
        # Renamed, strip A keeps its edit; strip B has none, so fine-tuning B is refused before any work.
        strip_named(scene, "shot A").name = "shot A renamed"
        select(editor, strip_named(scene, "shot B"))
        with self.assertRaisesRegex(RuntimeError, "Choose a keyframe edit of strip 'shot B' first"):
            bpy.ops.vidprior.finetune_strip()
        select(editor, strip_named(scene, "shot A renamed"))
        s.iterations, s.finetune_frames = 2, 2
        self.assertEqual(bpy.ops.vidprior.finetune_strip(), {"FINISHED"}, s.job_status)
        self.assertTrue(s.adapter)

    def test_fine_tune_and_stylize_selects_the_adapter_it_trained(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.iterations, s.finetune_frames, s.adapter = 2, 2, ""
        strip = image_strip(editor, "one click", 2, 1)
        select(editor, strip)
        self.assertEqual(bpy.ops.vidprior.run_method(), {"FINISHED"}, s.job_status)
        self.assertTrue(s.adapter, "run_method should select the adapter it trained")
        self.assertIn(s.adapter, state.known_adapters())

    def test_file_saved_mid_job_reopens_as_reattach_or_forget(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.busy, s.job_id, s.job_kind, s.job_status = True, "j-saved-mid-job", "stylize", "denoising frame 1/5"
        s.job_pending = True
        scene = reopen()
        s = scene.vidprior
        self.assertFalse(s.busy)
        self.assertTrue(s.job_pending)
        self.assertEqual(s.job_id, "j-saved-mid-job")
        self.assertEqual(bpy.ops.vidprior.forget_job(), {"FINISHED"})
        self.assertFalse(s.job_pending)

    def test_reattach_by_job_id_after_a_reopen_and_a_rename(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        source = image_strip(editor, "plate", 2, 5)
        uid = compat.strip_uid(source)
        # A job submitted by an earlier Blender session (here directly through the wire client).
        frames = []
        for path in FRAMES:
            with open(path, "rb") as f:
                frames.append({"name": os.path.basename(path), "png": f.read()})
        with client_module.Client("127.0.0.1", PORT) as c:
            job = c.submit("stylize", {"prompt": "ink", "strength": 0.5, "steps": 2, "seed": 0}, frames, name="plate")
        out = os.path.join(DATA, "out", "reattach")
        s.job_id, s.job_kind, s.job_pending, s.job_strip_uid, s.job_output_dir = job["id"], "stylize", True, uid, out
        scene = reopen()
        strip_named(scene, "plate").name = "plate renamed"
        before = {x.name for x in compat.all_strips(scene.sequence_editor)}
        self.assertEqual(bpy.ops.vidprior.reattach(), {"FINISHED"}, scene.vidprior.job_status)
        added = [x for x in compat.all_strips(scene.sequence_editor) if x.name not in before]
        self.assertEqual(len(added), 1)
        self.assertEqual(compat.strip_range(added[0]), compat.strip_range(strip_named(scene, "plate renamed")))
        self.assertFalse(scene.vidprior.job_pending)

    def test_reattached_keyframe_edit_keeps_its_strip_frame(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        s.candidates = 2
        strip = image_strip(editor, "edit plate", 2, 1)
        select(editor, strip)
        scene.frame_set(4)  # strip frame 3
        self.assertEqual(bpy.ops.vidprior.preview_edits(), {"FINISHED"}, s.job_status)
        job_id = s.job_id
        # As if Blender had closed before the candidates arrived: the job is saved as pending, none are shown.
        s.job_pending = True
        s.candidate_list.clear()
        scene = reopen()
        s = scene.vidprior
        self.assertEqual((s.job_id, s.job_kind), (job_id, "edit-keyframe"))
        self.assertEqual(bpy.ops.vidprior.reattach(), {"FINISHED"}, s.job_status)
        self.assertEqual(sorted((c.seed, c.frame) for c in s.candidate_list), [(0, 3), (1, 3)])
        self.assertEqual(bpy.ops.vidprior.use_candidate(seed=1), {"FINISHED"})
        self.assertEqual([e.frame for e in s.edits], [3])

    def duplicate(self, scene, strip):
        """Shift+D: Blender's own duplicate operator where this Blender runs it without a window (4.x+), else
        what it does to the id: a new strip with the same custom properties."""
        editor = scene.sequence_editor
        before = {x.name for x in compat.all_strips(editor)}
        select(editor, strip)
        try:
            bpy.ops.sequencer.duplicate()
        except RuntimeError:  # no sequencer area in -b (3.4)
            pass
        added = [x for x in compat.all_strips(editor) if x.name not in before]
        if added:
            return added[0], "operator"
        copy = image_strip(editor, strip.name + ".001", strip.channel + 1, compat.strip_range(strip)[0])
        copy[compat.UID_KEY] = strip[compat.UID_KEY]
        return copy, "custom property"

    def test_a_copied_strip_gets_its_own_id_and_no_edits(self):
        scene, editor = fresh_scene()
        s = scene.vidprior
        operators = importlib.import_module(ADDON + ".operators")
        original = image_strip(editor, "dup", 2, 1)
        select(editor, original)
        uid = compat.strip_uid(original)
        edit = s.edits.add()
        edit.strip_uid, edit.frame, edit.path = uid, 1, FRAMES[1]
        # An operator reads the ids: the scene records that "dup" owns uid.
        s.steps, s.strength = 1, 0.01
        with self.assertRaisesRegex(RuntimeError, "no denoising step"):
            bpy.ops.vidprior.stylize_strip()
        copy, how = self.duplicate(scene, original)
        print("duplicated by", how)
        self.assertEqual(copy.get(compat.UID_KEY), uid, "a copy starts with its original's id")
        # The panel (read only) already shows the copy without the original's edit.
        self.assertEqual(len(operators.strip_edits(scene, original)), 1)
        self.assertEqual(operators.strip_edits(scene, copy), [])
        # The next operator gives the copy a fresh id; the original keeps its own and its edit.
        select(editor, copy)
        with self.assertRaisesRegex(RuntimeError, "Choose a keyframe edit of strip '%s' first" % copy.name):
            bpy.ops.vidprior.finetune_strip()
        self.assertEqual(original.get(compat.UID_KEY), uid)
        self.assertTrue(copy.get(compat.UID_KEY))
        self.assertNotEqual(copy.get(compat.UID_KEY), uid)
        self.assertEqual([e.frame for e in operators.strip_edits(scene, original)], [1])
        # A renamed original copied before any operator ran keeps its id too (the copy's name is "….001").
        original.name = "dup renamed"
        copy2, _ = self.duplicate(scene, original)
        select(editor, copy2)
        with self.assertRaisesRegex(RuntimeError, "Choose a keyframe edit of strip '%s' first" % copy2.name):
            bpy.ops.vidprior.finetune_strip()
        self.assertEqual(original.get(compat.UID_KEY), uid)
        self.assertEqual(len({x.get(compat.UID_KEY) for x in compat.all_strips(editor)}), 3)
        # Saved and reopened, each strip keeps its own.
        scene = reopen()
        self.assertEqual(strip_named(scene, "dup renamed").get(compat.UID_KEY), uid)

    def test_undo_keeps_the_result_strip(self):
        scene, editor = fresh_scene()
        strip = image_strip(editor, "undo", 2, 1)
        select(editor, strip)
        bpy.ops.ed.undo_push(message="before stylize")
        self.assertEqual(bpy.ops.vidprior.stylize_strip(), {"FINISHED"}, scene.vidprior.job_status)
        names = {x.name for x in compat.all_strips(scene.sequence_editor)}
        self.assertEqual(len(names), 2)
        # The user edits something else, then undoes that edit: the result strip stays.
        bpy.context.scene.vidprior.prompt = "another prompt"
        bpy.ops.ed.undo_push(message="user edit")
        bpy.ops.ed.undo()
        self.assertEqual({x.name for x in compat.all_strips(bpy.context.scene.sequence_editor)}, names)


if __name__ == "__main__":
    unittest.main()


class Visibility(unittest.TestCase):
    """What the panel and the status bar show: the connection, the model warning, progress with an ETA."""

    def setUp(self):
        bpy.context.preferences.addons[ADDON].preferences.port = PORT

    def test_connection_line_knows_the_daemon_and_its_embedded_model(self):
        status = importlib.import_module(ADDON + ".status")
        self.assertEqual(bpy.ops.vidprior.test_connection(), {"FINISHED"})
        info = status.connection()
        self.assertEqual(info["state"], "connected")
        self.assertTrue(info["embedded"], "the test daemon runs the embedded random-weight model")
        prefs = bpy.context.preferences.addons[ADDON].preferences
        prefs.port = 1  # nothing listens there
        with self.assertRaisesRegex(RuntimeError, "E_CONNECTION"):
            bpy.ops.vidprior.test_connection()
        self.assertEqual(status.connection()["state"], "lost")

    def test_panel_shows_what_to_do_after_e_crashed(self):
        ui = importlib.import_module(ADDON + ".ui")

        class Layout:
            """Records the labels a draw function writes (a UILayout stand-in)."""

            def __init__(self, labels):
                self.labels = labels

            def label(self, text="", icon="NONE"):
                self.labels.append(text)

            def box(self, **kwargs):
                return self

            row = column = box

            def operator(self, *args, **kwargs):
                return self

        scene = bpy.context.scene
        s = scene.vidprior
        saved = (s.busy, s.job_pending, s.job_status)
        s.busy, s.job_pending, s.job_status = False, False, "E_CRASHED: job j-1 was running each of the 2 times"
        try:
            labels = []
            ui.draw_job(Layout(labels), s)
        finally:
            s.busy, s.job_pending, s.job_status = saved
        text = " ".join(labels)
        self.assertIn("Last job failed (E_CRASHED)", text)
        self.assertIn("lower the Working Size", text)

    def test_status_bar_text_has_an_eta(self):
        status = importlib.import_module(ADDON + ".status")

        class FakeJob:
            kind, fraction, started_at = "stylize", 0.25, 100.0

        self.assertEqual(status.eta_text(FakeJob(), now=130.0), "stylize 25% · 1:30 left")
        FakeJob.fraction = 0.0
        self.assertEqual(status.eta_text(FakeJob(), now=130.0), "stylize 0%")
