"""Render on Farm (`vidprior.render_on_farm`): the whole method on the strip, as the daemon's `farm` job, which the
daemon hands to a Slurm cluster (`vidprior serve --slurm`, docs/cluster.md). Offered in the panel only when the
daemon says it can (`kind:farm` in its welcome); the result strip appears when the farm is done.
"""
import bpy
from bpy.props import IntProperty

from . import operators, results, state
from .wire.worker import JobTask

FARM_CAPABILITY = "kind:farm"


def farm_offered():
    """True when the daemon last heard from (a job's or Test Connection's welcome) offers farm jobs."""
    return FARM_CAPABILITY in state.capabilities()


class VIDPRIOR_OT_render_on_farm(bpy.types.Operator):
    """Fine-tune on the strip toward the chosen edit and stylize it on the render farm (Slurm), through the daemon"""
    bl_idname = "vidprior.render_on_farm"
    bl_label = "Render on Farm"

    chunk: IntProperty(name="Frames per task", default=25, min=1, max=100000,
                       description="Frames each farm task stylizes")

    def execute(self, context):
        scene = operators.compat.sequencer_scene(context)
        ready = operators._strip_and_frames(self, context, with_edits=True,
                                            strength=scene.vidprior.strength if scene else None)
        if ready is None:
            return {"CANCELLED"}
        scene, strip, edits, files = ready
        s = scene.vidprior
        params = {"prompt": s.prompt, "negative_prompt": s.negative_prompt, "strength": round(s.strength, 6),
                  "steps": s.steps, "guidance": round(s.guidance, 6), "seed": s.seed, "chunk": self.chunk,
                  "train_frames": s.finetune_frames, "iters": s.iterations, "full": s.full_finetune}
        if s.adapter.strip():
            params["adapter"] = s.adapter.strip()
        elif not edits:
            self.report({"ERROR"}, "Choose a keyframe edit first (Preview Keyframe Edits, then Use Candidate)")
            return {"CANCELLED"}
        out = results.output_dir_for(scene, strip, "farm")
        task = JobTask(results.settings_from_prefs(context), "farm", params, files, out, edits=edits, name=strip.name)
        return operators._run(self, state.Job(task, "farm", scene, strip, out, on_done=results.ON_DONE["farm"]))


classes = (VIDPRIOR_OT_render_on_farm,)

register, unregister = bpy.utils.register_classes_factory(classes)
