"""What happens when a job finishes (main thread): its frames become a strip over its source, its candidates a
grid in the panel, its adapter the panel's choice. Each finds its strip by id, so a renamed strip still works."""
import os
import time

import bpy

from . import frames, state


def add_stylized_strip(job):
    source = job.source_strip()
    if source is None:
        raise frames.FrameError("strip '%s' was removed while it was being stylized" % job.strip_name)
    names = [job.frames[i] for i in sorted(job.frames)]
    strip = frames.add_result_strip(job.scene, source, job.output_dir, names)
    job.result = strip.name
    _undo_step("vidprior: add %s" % strip.name)


def _undo_step(message):
    """An undo step holding the new strip: in the UI it is added by a timer after the operator's own undo step,
    so without this the next undo would go back to a state without it."""
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError as err:  # no undo stack in this context: nothing to protect
        print("vidprior: no undo step (%s)" % err)


def load_candidates(job):
    settings = job.scene.vidprior
    settings.candidate_list.clear()
    for seed, path in sorted(job.candidates):
        item = settings.candidate_list.add()
        item.seed, item.path = int(seed), path
        item.frame, item.strip_uid = job.edit_frame, job.strip_uid or ""
        image = bpy.data.images.load(path, check_existing=True)
        item.image_name = image.name
    settings.candidate_index = 0


def remember_adapter(job):
    """A training job's adapter becomes the panel's choice (by name)."""
    adapter = (job.done or {}).get("outputs", {}).get("adapter")
    settings = job.scene.vidprior
    if adapter:
        state.set_adapters(state.known_adapters() + [adapter], settings)
        settings.adapter = adapter
    if job.kind == "finetune":
        job.result = adapter


def place_and_remember_adapter(job):
    """`run`: the stylized strip, and the adapter it trained selected for the next stylize."""
    remember_adapter(job)
    add_stylized_strip(job)


ON_DONE = {"stylize": add_stylized_strip, "run": place_and_remember_adapter, "deflicker": add_stylized_strip,
           "edit-keyframe": load_candidates, "finetune": remember_adapter, "farm": place_and_remember_adapter}


def output_dir_for(scene, strip, tag):
    return frames.output_folder(scene.vidprior.output_folder, strip.name,
                                "%s_%s" % (tag, time.strftime("%Y%m%d-%H%M%S")))


def settings_from_prefs(context):
    prefs = context.preferences.addons[__package__].preferences
    return {"host": prefs.host, "port": prefs.port, "token": prefs.token, "timeout": 10.0}


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path

