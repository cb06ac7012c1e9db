"""Render on Farm inside Blender (-b), against a daemon started with --slurm:

  blender -b --factory-startup --python-exit-code 1 --python farm_in_blender.py -- ZIP PORT DATA_DIR

The daemon's welcome offers kind:farm, so the panel's farm choice is there; the operator sends the strip as a farm
job and the result strip appears over it when the farm is done. DATA_DIR holds the test frames (frames/*.png).
"""
import glob
import os
import sys

import bpy

zip_path, port, data = sys.argv[sys.argv.index("--") + 1:][:3]
bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="vidprior")
prefs = bpy.context.preferences.addons["vidprior"].preferences
prefs.host, prefs.port = "127.0.0.1", int(port)

from vidprior import compat, farm_op, state  # noqa: E402

# 1. The daemon offers farm jobs (Test Connection learns it from the welcome).
assert not farm_op.farm_offered(), "nothing known before the first handshake"
assert bpy.ops.vidprior.test_connection() == {"FINISHED"}
assert farm_op.farm_offered(), state.capabilities()

# 2. A strip and its chosen edit.
scene = bpy.context.scene
editor = compat.ensure_sequence_editor(scene)
s = scene.vidprior
s.prompt, s.strength, s.steps, s.guidance, s.seed = "a watercolor painting", 0.5, 4, 7.5, 0
s.iterations, s.finetune_frames = 2, 2
s.output_folder = os.path.join(data, "out")
files = sorted(glob.glob(os.path.join(data, "frames", "*.png")))
strip = compat.new_image_strip(editor, "shot", os.path.dirname(files[0]), [os.path.basename(f) for f in files], 2, 1)
for other in compat.all_strips(editor):
    other.select = False
strip.select = True
editor.active_strip = strip
edit = s.edits.add()  # an edit belongs to its strip (by the strip's id)
edit.strip_uid, edit.frame, edit.path = compat.strip_uid(strip), 0, files[-1]

# 3. Render on the farm: the operator blocks in -b until the farm job is done, then adds the result strip.
before = {x.name for x in compat.all_strips(editor)}
assert bpy.ops.vidprior.render_on_farm(chunk=2) == {"FINISHED"}, s.job_status
added = [x for x in compat.all_strips(editor) if x.name not in before]
assert len(added) == 1, [x.name for x in added]
assert len(added[0].elements) == len(files), len(added[0].elements)
assert compat.strip_range(added[0]) == compat.strip_range(strip)
assert all(os.path.isfile(os.path.join(bpy.path.abspath(added[0].directory), e.filename)) for e in added[0].elements)
print("render on farm: ok (%d frames, job %s)" % (len(files), s.job_id))
