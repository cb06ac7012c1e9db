"""Operators (`vidprior.*`). Each checks its context, prepares one request, starts it and returns. In the UI
a timer follows the job; in `blender -b` the operator blocks until the job ends (timers do not fire there).
"""
import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import compat, frames, identity, results, state, status
from .wire.worker import CallTask, JobTask


def _strip_or_report(op, context):
    scene = compat.sequencer_scene(context)
    identity.settle(scene)  # a copied strip (Shift+D) gets its own id before anything is keyed by it
    strip = compat.active_strip(scene) if scene else None
    if strip is None:
        op.report({"ERROR"}, "Select a movie or image strip in the sequencer first")
        return scene, None
    if not (compat.is_movie_strip(strip) or compat.is_image_strip(strip)):
        op.report({"ERROR"}, "Strip '%s' is a %s strip: vidprior works on movie and image strips" % (
            strip.name, strip.type.lower()))
        return scene, None
    return scene, strip


def _strip_and_frames(op, context, with_edits=False, strength=None):
    """The checks the strip operators start with: no job running, an active movie/image strip, (the chosen
    edits of that strip,) steps × strength leaving a denoising step, then its frames on disk. Returns (scene,
    strip, edits, files), or None after reporting why."""
    if _busy(op):
        return None
    scene, strip = _strip_or_report(op, context)
    if strip is None:
        return None
    edits = _edits_or_report(op, scene, strip) if with_edits else []
    if edits is None:
        return None
    if strength is not None and not _steps_left(op, scene.vidprior, strength):
        return None
    files = _frame_files(op, scene, strip)
    if files is None:
        return None
    return scene, strip, edits, files


def _busy(op):
    job = state.current()
    if job is not None and not job.ended:
        op.report({"ERROR"}, "vidprior is already running a %s job: cancel it or wait" % job.kind)
        return True
    return False


def _steps_left(op, s, strength):
    """The daemon's img2img runs int(steps × strength) steps: none left is refused here, before any render."""
    if int(s.steps * round(strength, 6)) >= 1:
        return True
    op.report({"ERROR"}, "strength %.3g with %d steps leaves no denoising step (int(steps × strength) = 0): "
                         "raise one of them" % (strength, s.steps))
    return False


def _frame_files(op, scene, strip, only_frame=None):
    """The frames to send (only `only_frame` when given: a preview renders one frame, not the strip)."""
    workdir = frames.render_folder(scene.vidprior.output_folder)
    try:
        files = frames.strip_frame_files(scene, strip, workdir, None if only_frame is None else [only_frame])
    except frames.FrameError as err:
        frames.remove_temp_dirs([workdir])
        op.report({"ERROR"}, str(err))
        return None
    if not os.listdir(workdir):  # an image strip's own files: nothing rendered
        frames.remove_temp_dirs([workdir])
    return [("%06d%s" % (number, os.path.splitext(path)[1].lower()), path) for number, path in files]


def _run(op, job):
    """Starts `job`; blocks in background mode and turns its outcome into a report."""
    try:
        state.start(job)
    except RuntimeError as err:
        op.report({"ERROR"}, str(err))
        return {"CANCELLED"}
    if not bpy.app.background:
        op.report({"INFO"}, "vidprior: %s started" % job.kind)
        return {"FINISHED"}
    state.wait(job)
    if job.error is not None:
        code, message = job.error
        op.report({"WARNING"} if code == "E_CANCELLED" else {"ERROR"}, status.error_text(job.kind, code, message))
        return {"CANCELLED"}
    op.report({"INFO"}, "vidprior: %s done" % job.kind)
    return {"FINISHED"}


def _run_started(op, job):
    """Waits for a job that a finished job started (headless mode) and reports its outcome."""
    state.wait(job)
    if job.error is not None:
        op.report({"ERROR"}, status.error_text(job.kind, job.error[0], job.error[1]))
        return {"CANCELLED"}
    op.report({"INFO"}, "vidprior: %s done" % job.kind)
    return {"FINISHED"}


def _add_style_lora(s, params):
    """params.loras from the Style LoRA field: a file path, or a name from the daemon's adapters folder."""
    value = s.style_lora.strip()
    if value:
        is_path = "/" in value or "\\" in value or value.endswith(".safetensors")
        lora = {"path": bpy.path.abspath(value)} if is_path else {"name": value}
        lora["weight"] = round(s.style_lora_weight, 6)
        params["loras"] = [lora]
    return params


def _add_work_size(s, params):
    """params.work_size from the panel's Working Size; 0 sends nothing (the daemon's default: the model's size)."""
    if s.work_size > 0:
        params["work_size"] = int(s.work_size)
    return params


def _common_params(s, strength):
    params = {"prompt": s.prompt, "negative_prompt": s.negative_prompt, "strength": round(strength, 6),
              "steps": s.steps, "guidance": round(s.guidance, 6), "seed": s.seed}
    if s.adapter.strip():
        params["adapter"] = s.adapter.strip()
    return _add_work_size(s, _add_style_lora(s, params))


class VIDPRIOR_OT_stylize_strip(bpy.types.Operator):
    """Stylize every frame of the active strip and add the result as a new strip above it"""
    bl_idname = "vidprior.stylize_strip"
    bl_label = "Stylize Strip"

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        ready = _strip_and_frames(self, context, strength=scene.vidprior.strength if scene else None)
        if ready is None:
            return {"CANCELLED"}
        scene, strip, _, files = ready
        s = scene.vidprior
        out = results.output_dir_for(scene, strip, "stylize")
        task = JobTask(results.settings_from_prefs(context), "stylize", _common_params(s, s.strength), files, out,
                       name=strip.name)
        return _run(self, state.Job(task, "stylize", scene, strip, out, on_done=results.add_stylized_strip))


class VIDPRIOR_OT_preview_edits(bpy.types.Operator):
    """Keyframe edit candidates: img2img of the current frame of the active strip at high strength, several seeds"""
    bl_idname = "vidprior.preview_edits"
    bl_label = "Preview Keyframe Edits"

    def execute(self, context):
        if _busy(self):
            return {"CANCELLED"}
        scene, strip = _strip_or_report(self, context)
        if strip is None:
            return {"CANCELLED"}
        start, end = compat.strip_range(strip)
        frame = scene.frame_current
        if not start <= frame < end:
            self.report({"ERROR"}, "The current frame %d is outside strip '%s' (%d-%d)" % (
                frame, strip.name, start, end - 1))
            return {"CANCELLED"}
        s = scene.vidprior
        if not _steps_left(self, s, s.edit_strength):
            return {"CANCELLED"}
        files = _frame_files(self, scene, strip, only_frame=frame)
        if not files:
            return {"CANCELLED"}
        params = _common_params(s, s.edit_strength)
        params.update({"candidates": s.candidates, "frame": 0})
        out = results.output_dir_for(scene, strip, "edits_f%d" % (frame - start))
        task = JobTask(results.settings_from_prefs(context), "edit-keyframe", params, files, out, name=strip.name)
        job = state.Job(task, "edit-keyframe", scene, strip, out, on_done=results.load_candidates)
        job.edit_frame = frame - start
        return _run(self, job)


class VIDPRIOR_OT_use_candidate(bpy.types.Operator):
    """Use the selected candidate as the keyframe edit for fine-tuning"""
    bl_idname = "vidprior.use_candidate"
    bl_label = "Use Candidate"

    seed: IntProperty(name="Seed", description="The candidate's seed (-1: the selected candidate)", default=-1)

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        s = scene.vidprior
        if self.seed >= 0:
            candidate = next((c for c in s.candidate_list if c.seed == self.seed), None)
        elif 0 <= s.candidate_index < len(s.candidate_list):
            candidate = s.candidate_list[s.candidate_index]
        else:
            candidate = None
        if candidate is None:
            self.report({"ERROR"}, "Preview keyframe edits first, then pick a candidate")
            return {"CANCELLED"}
        # The candidate knows its strip and frame (saved with the file): the edit goes to that strip.
        identity.settle(scene)
        edit = next((e for e in s.edits if e.strip_uid == candidate.strip_uid and e.frame == candidate.frame), None)
        edit = edit or s.edits.add()
        edit.strip_uid, edit.frame, edit.path = candidate.strip_uid, candidate.frame, candidate.path
        strip = compat.find_strip(scene, candidate.strip_uid)
        self.report({"INFO"}, "Frame %d of strip '%s' will be fine-tuned toward candidate seed %d" % (
            candidate.frame, strip.name if strip else "?", candidate.seed))
        return {"FINISHED"}


def strip_edits(scene, strip):
    """The keyframe edits chosen for `strip` (by its id: a renamed strip keeps them, a copy or another strip has
    its own)."""
    uid = identity.uid_of(scene, strip)  # read only: the panel's draw calls this, and may not write
    return [e for e in scene.vidprior.edits if e.path and e.strip_uid == uid] if uid else []


def _edits_or_report(op, scene, strip):
    edits = [(e.frame, bpy.path.abspath(e.path)) for e in strip_edits(scene, strip)]
    missing = [p for _, p in edits if not os.path.isfile(p)]
    if missing:
        op.report({"ERROR"}, "Edited keyframe image %s does not exist" % missing[0])
        return None
    return edits


class VIDPRIOR_OT_finetune_strip(bpy.types.Operator):
    """Fine-tune the model on the active strip (LoRA), toward the chosen keyframe edits"""
    bl_idname = "vidprior.finetune_strip"
    bl_label = "Fine-tune on Strip"

    def execute(self, context):
        if _busy(self):
            return {"CANCELLED"}
        scene, strip = _strip_or_report(self, context)
        if strip is None:
            return {"CANCELLED"}
        if not strip_edits(scene, strip):  # before rendering any frame
            self.report({"ERROR"}, "Choose a keyframe edit of strip '%s' first (Preview Keyframe Edits, then Use "
                                   "Candidate)" % strip.name)
            return {"CANCELLED"}
        ready = _strip_and_frames(self, context, with_edits=True)
        if ready is None:
            return {"CANCELLED"}
        scene, strip, edits, files = ready
        s = scene.vidprior
        params = _add_style_lora(s, {"prompt": s.prompt, "train_frames": s.finetune_frames, "iters": s.iterations,
                                     "seed": s.seed, "full": s.full_finetune})
        _add_work_size(s, params)
        out = results.output_dir_for(scene, strip, "finetune")
        task = JobTask(results.settings_from_prefs(context), "finetune", params, files, out, edits=edits,
                       name=strip.name)
        return _run(self, state.Job(task, "finetune", scene, strip, out, on_done=results.remember_adapter))


class VIDPRIOR_OT_run_method(bpy.types.Operator):
    """The whole method in one click: fine-tune on the strip toward the chosen edit, then stylize it"""
    bl_idname = "vidprior.run_method"
    bl_label = "Fine-tune and Stylize"

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        ready = _strip_and_frames(self, context, with_edits=True, strength=scene.vidprior.strength if scene else None)
        if ready is None:
            return {"CANCELLED"}
        scene, strip, edits, files = ready
        s = scene.vidprior
        settings = results.settings_from_prefs(context)
        params = _common_params(s, s.strength)
        params.pop("adapter", None)
        params.update({"train_frames": s.finetune_frames, "iters": s.iterations, "full": s.full_finetune})
        out = results.output_dir_for(scene, strip, "run")

        def run_job(chosen_edits):
            task = JobTask(settings, "run", params, files, out, edits=chosen_edits, name=strip.name)
            return state.Job(task, "run", scene, strip, out, on_done=results.place_and_remember_adapter)

        if edits:
            return _run(self, run_job(edits))
        # No edit chosen: take the first candidate of the middle frame, then run the method with it.
        middle = len(files) // 2
        edit_params = _common_params(s, s.edit_strength)
        edit_params.pop("adapter", None)
        edit_params.update({"candidates": 1, "frame": 0})
        edit_out = results.output_dir_for(scene, strip, "edit_f%d" % middle)

        def then_run(edit_job):
            if not edit_job.candidates:
                raise RuntimeError("the keyframe edit produced no candidate")
            next_job = run_job([(middle, edit_job.candidates[0][1])])
            state.start(next_job)
            edit_job.result = next_job

        task = JobTask(settings, "edit-keyframe", edit_params, [files[middle]], edit_out, name=strip.name)
        first = state.Job(task, "edit-keyframe", scene, strip, edit_out, on_done=then_run)
        status = _run(self, first)
        if bpy.app.background and first.error is None and first.result is not None:
            return _run_started(self, first.result)
        return status


class VIDPRIOR_OT_cancel(bpy.types.Operator):
    """Cancel the running vidprior job (the daemon stops at its next step)"""
    bl_idname = "vidprior.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        job = state.current()
        if job is None or job.ended:
            self.report({"INFO"}, "No vidprior job is running")
            return {"CANCELLED"}
        job.task.cancel()
        if bpy.app.background:
            state.wait(job)
        self.report({"INFO"}, "vidprior: cancelling")
        return {"FINISHED"}


class VIDPRIOR_OT_test_connection(bpy.types.Operator):
    """Ask the daemon for its version, models and execution provider"""
    bl_idname = "vidprior.test_connection"
    bl_label = "Test Connection"

    def execute(self, context):
        task = CallTask(results.settings_from_prefs(context))
        task.start()
        # A handshake is short: waiting for it here keeps the answer in this operator's own report.
        task.finished.wait(15.0)
        events = task.drain()
        result = next((e[1] for e in events if e[0] == "result"), None)
        error = next((e for e in events if e[0] == "error"), None)
        if result is None:
            code, message = (error[1], error[2]) if error else ("E_CONNECTION", "no answer within 15 s")
            if code == "E_CONNECTION":
                status.note_lost(message)
            self.report({"ERROR"}, "vidprior daemon: %s (%s)" % (message, code))
            return {"CANCELLED"}
        welcome, models = result["welcome"], result["models"]
        scene = compat.sequencer_scene(context)
        state.set_adapters([a["name"] for a in models.get("adapters", [])], scene.vidprior if scene else None)
        state.set_last_info(result)
        names = ", ".join(m["name"] for m in models.get("models", [])) or "none"
        self.report({"INFO"}, "vidprior %s, protocol %s, provider %s, models: %s" % (
            welcome["server"]["version"], welcome["protocol"], welcome.get("ep"), names))
        return {"FINISHED"}


class VIDPRIOR_OT_report(bpy.types.Operator):
    """Shows a message from a finished background job (internal)"""
    bl_idname = "vidprior.report"
    bl_label = "vidprior report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(k, k, "") for k in ("INFO", "WARNING", "ERROR")], default="INFO")
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


classes = (VIDPRIOR_OT_stylize_strip, VIDPRIOR_OT_preview_edits, VIDPRIOR_OT_use_candidate, VIDPRIOR_OT_finetune_strip,
           VIDPRIOR_OT_run_method, VIDPRIOR_OT_cancel, VIDPRIOR_OT_test_connection, VIDPRIOR_OT_report)

register, unregister = bpy.utils.register_classes_factory(classes)
