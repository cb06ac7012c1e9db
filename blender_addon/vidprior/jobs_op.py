"""Jobs by id, after the Blender session that started them is gone (a reopened file, a daemon restart, a lost
connection): Re-attach asks the daemon for the job by its id, replays its frames and places the result over
its strip (found by id, so a renamed strip works); Forget drops the job from the panel."""
import os

import bpy
from bpy.props import StringProperty

from . import compat, frames, identity, operators, results, state
from .wire.worker import AttachTask


class VIDPRIOR_OT_reattach(bpy.types.Operator):
    """Follow the scene's unfinished vidprior job again (by its id) and place its result when it is done"""
    bl_idname = "vidprior.reattach"
    bl_label = "Re-attach"

    job: StringProperty(name="Job id", description="The daemon's job id (empty: the scene's unfinished job)")

    def execute(self, context):
        if operators._busy(self):
            return {"CANCELLED"}
        scene = compat.sequencer_scene(context)
        s = scene.vidprior
        job_id = self.job or s.job_id
        if not job_id:
            self.report({"ERROR"}, "No vidprior job to re-attach to in scene '%s'" % scene.name)
            return {"CANCELLED"}
        kind = s.job_kind or "stylize"
        identity.settle(scene)
        strip = compat.find_strip(scene, s.job_strip_uid)
        if strip is None and kind in ("stylize", "run", "deflicker", "edit-keyframe", "farm"):
            self.report({"ERROR"}, "The strip job %s was made for is gone: Forget the job" % job_id)
            return {"CANCELLED"}
        out = s.job_output_dir or results.output_dir_for(scene, strip, kind)
        task = AttachTask(results.settings_from_prefs(context), job_id, bpy.path.abspath(out))
        job = state.Job(task, kind, scene, strip, bpy.path.abspath(out), on_done=results.ON_DONE.get(kind))
        job.temp_dirs = [d for d in s.job_temp_dirs.split(os.pathsep) if d]
        job.edit_frame = s.job_edit_frame  # the candidates are for the frame the edit was made for
        return operators._run(self, job)


class VIDPRIOR_OT_forget_job(bpy.types.Operator):
    """Forget the scene's unfinished vidprior job (the daemon keeps it; its frames are not placed)"""
    bl_idname = "vidprior.forget_job"
    bl_label = "Forget"

    def execute(self, context):
        s = compat.sequencer_scene(context).vidprior
        job = state.current()
        if job is not None and not job.ended:
            self.report({"ERROR"}, "The job is running: cancel it instead")
            return {"CANCELLED"}
        s.job_pending, s.busy, s.job_status = False, False, "forgot job %s" % s.job_id
        frames.remove_temp_dirs([d for d in s.job_temp_dirs.split(os.pathsep) if d])
        s.job_temp_dirs = ""
        return {"FINISHED"}


classes = (VIDPRIOR_OT_reattach, VIDPRIOR_OT_forget_job)

register, unregister = bpy.utils.register_classes_factory(classes)
