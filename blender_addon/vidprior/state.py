"""The one job the add-on runs at a time, and how its events reach Blender (main thread only).

In the UI a timer drains the worker's events every 0.2 s. In `blender -b` timers never fire, so operators
call `wait()`, which drains in a loop until the job ends: scripts and render farms block until done.
"""
import os
import time

import bpy

from . import compat, frames

_job = None          # the running Job, or None
_adapters = []       # adapter names the daemon listed last
_last_info = None    # the last "test connection" result
_capabilities = None  # welcome.capabilities of the last job's connection


class Job:
    """A worker task plus what the main thread needs to finish it (which strip, where frames go)."""

    def __init__(self, task, kind, scene, strip=None, output_dir=None, on_done=None, frame_names=None):
        self.task = task
        self.kind = kind
        self.scene_name = scene.name
        self.strip_name = strip.name if strip is not None else None
        self.output_dir = output_dir
        self.on_done = on_done          # callable(job, done_message) run on the main thread
        self.frame_names = frame_names or []
        self.frames = {}                # index -> file name
        self.candidates = []            # (seed, path) for edit-keyframe
        self.error = None               # (code, message)
        self.result = None
        self.done = None
        self.ended = False

    @property
    def scene(self):
        return bpy.data.scenes.get(self.scene_name)


def current():
    return _job


def known_adapters():
    return list(_adapters)


def set_adapters(names):
    global _adapters
    _adapters = sorted(set(names))


def last_info():
    return _last_info


def capabilities():
    """What the daemon offers (welcome.capabilities), from the last job's handshake or Test Connection."""
    if _capabilities is not None:
        return list(_capabilities)
    return list((_last_info or {}).get("welcome", {}).get("capabilities", []))


def start(job):
    """Starts `job`'s worker and, in the UI, the timer that follows it."""
    global _job
    if _job is not None and not _job.ended:
        raise RuntimeError("vidprior is already running a %s job: cancel it or wait" % _job.kind)
    _job = job
    settings = job.scene.vidprior if job.scene else None
    if settings is not None:
        settings.busy, settings.job_kind, settings.job_status, settings.job_progress, settings.job_id = True, job.kind, "starting", 0.0, ""
    job.task.start()
    if not bpy.app.background and not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.2)


def wait(job, timeout=None):
    """Blocks until `job` ends (headless mode). Returns the job."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not job.ended:
        pump()
        if job.ended:
            break
        if deadline is not None and time.monotonic() > deadline:
            job.task.cancel()
            deadline = None
        job.task.finished.wait(0.1)
    pump()
    return job


def _timer():
    pump()
    _redraw()
    return None if _job is None or _job.ended else 0.2


def _redraw():
    wm = bpy.context.window_manager if bpy.context else None
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "PREFERENCES"):
                area.tag_redraw()


def pump():
    """Applies the worker's events to Blender. Returns True while the job runs."""
    job = _job
    if job is None or job.ended:
        return False
    settings = job.scene.vidprior if job.scene else None
    for event in job.task.drain():
        kind = event[0]
        if kind == "connected":
            _remember_capabilities(event[1])
        elif kind == "accepted" and settings is not None:
            settings.job_id = event[1]["id"]
            settings.job_status = "queued"
        elif kind == "progress" and settings is not None:
            p = event[1]
            settings.job_progress = float(p.get("fraction") or 0.0)
            settings.job_status = _describe(p)
        elif kind == "frame":
            _, index, name, path, seed = event
            job.frames[index] = name
            if seed is not None:
                job.candidates.append((seed, path))
        elif kind == "result":
            job.result = event[1]
            _finish(job, settings)
        elif kind == "done":
            job.done = event[1]
            _finish(job, settings)
        elif kind == "error":
            job.error = (event[1], event[2])
            _finish(job, settings)
    return not job.ended


def _remember_capabilities(welcome):
    global _capabilities
    _capabilities = list(welcome.get("capabilities", []))


def _describe(p):
    stage = p.get("stage", "")
    if p.get("iterations"):
        loss = p.get("loss")
        return "%s %d/%d%s" % (stage, p.get("iteration", 0), p["iterations"], " loss %.4f" % loss if loss is not None else "")
    if p.get("frames_total"):
        return "%s frame %d/%d" % (stage, p.get("frames_done", 0), p["frames_total"])
    return stage


def _finish(job, settings):
    job.ended = True
    if job.error is None and job.on_done is not None:
        try:
            job.on_done(job)
        except (frames.FrameError, RuntimeError, OSError) as err:
            job.error = ("E_ADDON", str(err))
    if settings is not None:
        settings.busy = False
        settings.job_progress = 1.0 if job.error is None else settings.job_progress
        settings.job_status = "done" if job.error is None else "%s: %s" % job.error
    if job.error is not None and not bpy.app.background:
        _report_async("ERROR", "vidprior: %s" % job.error[1] if job.error[0] != "E_CANCELLED" else "vidprior: cancelled")


def _report_async(level, message):
    """Shows a report from a timer, where no operator is running: through a tiny operator."""
    try:
        bpy.ops.vidprior.report(level=level, message=message)
    except RuntimeError:
        print(message)


# -- what happens when a job finishes ----------------------------------------------------------------------

def add_stylized_strip(job):
    scene = job.scene
    editor = compat.ensure_sequence_editor(scene)
    source = next((s for s in compat.all_strips(editor) if s.name == job.strip_name), None)
    if source is None:
        raise frames.FrameError("strip '%s' was removed while it was being stylized" % job.strip_name)
    names = [job.frames[i] for i in sorted(job.frames)]
    strip = frames.add_result_strip(scene, source, job.output_dir, names)
    job.result = strip.name


def load_candidates(job):
    settings = job.scene.vidprior
    settings.candidate_list.clear()
    for seed, path in sorted(job.candidates):
        item = settings.candidate_list.add()
        item.seed, item.path = int(seed), path
        image = bpy.data.images.load(path, check_existing=True)
        item.image_name = image.name
    settings.candidate_index = 0


def remember_adapter(job):
    adapter = (job.done or {}).get("outputs", {}).get("adapter")
    if adapter:
        set_adapters(known_adapters() + [adapter])
        try:
            job.scene.vidprior.adapter = adapter
        except TypeError:
            pass
    job.result = adapter


def output_dir_for(scene, strip, tag):
    return frames.output_folder(scene.vidprior.output_folder, strip.name, "%s_%s" % (tag, time.strftime("%Y%m%d-%H%M%S")))


def settings_from_prefs(context):
    prefs = context.preferences.addons[__package__].preferences
    return {"host": prefs.host, "port": prefs.port, "token": prefs.token, "timeout": 10.0}


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path
