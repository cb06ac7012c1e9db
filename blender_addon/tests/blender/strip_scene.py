"""Shared by the in-Blender tests: an empty sequencer with one image strip of the given files, active, and the
scene's vidprior settings set for the test."""
import importlib
import os

import bpy

ADDON = os.environ.get("VIDPRIOR_TEST_ADDON", "vidprior")
compat = importlib.import_module(ADDON + ".compat")


def image_strip_scene(name, files, **settings):
    """Removes every strip, sets scene.vidprior's `settings` and an output folder under the test data, and adds
    `files` as image strip `name` (channel 2, from frame 1), made active. Returns (scene, editor, strip)."""
    scene = bpy.context.scene
    editor = compat.ensure_sequence_editor(scene)
    for strip in list(compat.all_strips(editor)):
        compat.strips_collection(editor).remove(strip)
    s = scene.vidprior
    for key, value in settings.items():
        setattr(s, key, value)
    s.output_folder = os.path.join(os.environ["VIDPRIOR_TEST_DATA"], "out")
    strip = compat.new_image_strip(editor, name, os.path.dirname(files[0]), [os.path.basename(f) for f in files],
                                   2, 1)
    editor.active_strip = strip
    return scene, editor, strip
