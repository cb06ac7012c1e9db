"""Deflicker Strips (`vidprior.deflicker_strips`): the daemon's `deflicker` job on a pair of strips, the active
(processed, flickering) strip and its source. It sends the source's frames as the job's frames and the processed
strip's frames as their processed versions, and adds the result above the processed strip.

The source is, in this order: the other selected movie/image strip; the strip the processed one was made from
when vidprior made it (named "<source> vidprior"); the nearest movie/image strip below it over the same frames.
"""
import bpy
from bpy.props import BoolProperty, IntProperty

from . import compat, operators, results, state
from .wire.worker import JobTask

RESULT_SUFFIX = " vidprior"


def _media(strip):
    return compat.is_movie_strip(strip) or compat.is_image_strip(strip)


def find_source(scene, processed):
    """The source strip of `processed`, or (None, why)."""
    strips = [s for s in compat.all_strips(scene.sequence_editor) if s != processed and _media(s)]
    selected = [s for s in strips if s.select]
    if len(selected) == 1:
        return selected[0], None
    if len(selected) > 1:
        return None, f"select only the processed strip (active) and its source, not {len(selected)} other strips"
    if processed.name.endswith(RESULT_SUFFIX):
        named = next((s for s in strips if s.name == processed.name[: -len(RESULT_SUFFIX)]), None)
        if named is not None:
            return named, None
    span = compat.strip_range(processed)
    below = [s for s in strips if s.channel < processed.channel and compat.strip_range(s) == span]
    if below:
        return max(below, key=lambda s: s.channel), None
    return None, f"no source strip for '{processed.name}': also select the original strip it was made from"


class VIDPRIOR_OT_deflicker_strips(bpy.types.Operator):
    """Remove the flicker of the active (processed) strip, trained on it and its source strip (Deep Video Prior)"""
    bl_idname = "vidprior.deflicker_strips"
    bl_label = "Deflicker Strip"
    bl_options = {"REGISTER"}

    working_size: IntProperty(name="Working size", default=0, min=0, max=16384,
                              description="Train at this short side (faster; the result is full size); 0 = full size")
    irt: BoolProperty(name="Two-mode flicker (IRT)", default=False,
                      description="For processing that flips between two results, e.g. two colours")
    epochs: IntProperty(name="Epochs", default=25, min=1, max=10000, description="Epochs over the frames (DVP: 25)")
    width: IntProperty(name="Network width", default=16, min=4, max=128, description="U-Net channels at full scale")
    scales: IntProperty(name="Network scales", default=5, min=2, max=6, description="U-Net resolution levels")

    def execute(self, context):
        if operators._busy(self):
            return {"CANCELLED"}
        scene, processed = operators._strip_or_report(self, context)
        if processed is None:
            return {"CANCELLED"}
        source, why = find_source(scene, processed)
        if source is None:
            self.report({"ERROR"}, why)
            return {"CANCELLED"}
        (a, b), (c, d) = compat.strip_range(source), compat.strip_range(processed)
        if b - a != d - c:
            self.report({"ERROR"}, f"strips '{source.name}' and '{processed.name}' show {b - a} and {d - c} frames")
            return {"CANCELLED"}
        originals = operators._frame_files(self, scene, source)
        if originals is None:
            return {"CANCELLED"}
        processed_files = operators._frame_files(self, scene, processed)
        if processed_files is None:
            return {"CANCELLED"}
        params = {"working_size": self.working_size, "irt": self.irt, "epochs": self.epochs, "width": self.width,
                  "scales": self.scales, "seed": scene.vidprior.seed}
        edits = [(i, path) for i, (_, path) in enumerate(processed_files)]
        out = results.output_dir_for(scene, processed, "deflicker")
        task = JobTask(results.settings_from_prefs(context), "deflicker", params, originals, out, edits=edits,
                       name=processed.name)
        return operators._run(self, state.Job(task, "deflicker", scene, processed, out,
                                              on_done=results.add_stylized_strip))


classes = (VIDPRIOR_OT_deflicker_strips,)

register, unregister = bpy.utils.register_classes_factory(classes)
