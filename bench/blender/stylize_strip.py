"""Inside `blender -b`: stylize the first FRAMES frames of a movie as a user would, with the add-on's own operator.

  blender -b --factory-startup --python-exit-code 1 --python stylize_strip.py -- ZIP PORT MOVIE FRAMES OUT_DIR RESULT

Installs the add-on from ZIP, points it at the daemon on PORT (loopback: frames go by path, the daemon writes the
results into OUT_DIR), adds MOVIE as a movie strip in a scene of the movie's size, trims it to FRAMES frames,
runs Stylize Strip (it blocks until the job ends in background mode) and writes RESULT, a JSON file: seconds,
the result strip's frame count, Blender's own peak RSS, and the operator's outcome. bench/blender-strip-rss.ts
measures the daemon around it.
"""
import json
import os
import sys
import time

import bpy

zip_path, port, movie, frame_count, out_dir, result_path = sys.argv[sys.argv.index("--") + 1:]
frame_count = int(frame_count)

bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="vidprior")
prefs = bpy.context.preferences.addons["vidprior"].preferences
prefs.host, prefs.port = "127.0.0.1", int(port)

scene = bpy.context.scene
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strip = strips.new_movie(name="shot", filepath=movie, channel=1, frame_start=1)
if strip.frame_final_duration < frame_count:
    raise SystemExit("%s has %d frames, fewer than %d" % (movie, strip.frame_final_duration, frame_count))
strip.frame_final_duration = frame_count
editor.active_strip = strip
element = strip.elements[0]
scene.render.resolution_x, scene.render.resolution_y = element.orig_width, element.orig_height
scene.frame_start, scene.frame_end = 1, frame_count

s = scene.vidprior
s.prompt, s.strength, s.steps, s.seed = "a watercolor painting", 0.5, 4, 0
s.output_folder = out_dir

started = time.monotonic()
outcome = bpy.ops.vidprior.stylize_strip()
seconds = time.monotonic() - started

placed = [x for x in (editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)
          if x.name.startswith("shot vidprior")]
with open("/proc/self/status") as f:
    hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
with open(result_path, "w") as f:
    json.dump({
        "outcome": sorted(outcome),
        "seconds": seconds,
        "width": element.orig_width,
        "height": element.orig_height,
        "frames": frame_count,
        "result_frames": len(placed[0].elements) if placed else 0,
        "blender_peak_rss_mib": hwm_kib / 1024,
        "blender": bpy.app.version_string,
        "leftover_render_dirs": [d for d in os.listdir(out_dir) if d.startswith("vidprior-frames-")],
    }, f)
