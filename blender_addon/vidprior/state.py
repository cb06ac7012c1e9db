"""The one job the add-on runs at a time, and how its events reach Blender (main thread only).

In the UI a timer drains the worker's events every 0.2 s. In `blender -b` timers never fire, so operators
call `wait()`, which drains in a loop until the job ends: scripts and render farms block until done.

What must outlive Blender (the job id, its strip's id, its output folder) is kept on the scene, so a file saved
mid-job reopens with "Re-attach / Forget" instead of "busy", and a job is re-attached by its id.
"""
import os
import time

import bpy
from bpy.app.handlers import persistent

from . import compat, frames, identity, status

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
        self.strip_uid = compat.strip_uid(strip) if strip is not None else None
        self.output_dir = output_dir
        self.on_done = on_done          # callable(job) run on the main thread
        self.frame_names = frame_names or []
        self.frames = {}                # index -> file name
        self.candidates = []            # (seed, path) for edit-keyframe
        self.edit_frame = 0             # edit-keyframe: the strip-relative frame the candidates are for
        self.error = None               # (code, message)
        self.result = None
        self.done = None
        self.ended = False
        self.started_at = time.monotonic()
        self.fraction = 0.0
        self.phase = ""                 # what the worker does before the daemon reports, e.g. "uploading frames 2/5"
        sent = [p for _, p in getattr(task, "frame_files", [])] + [p for _, p in getattr(task, "edits", [])]
        self.temp_dirs = frames.temp_dirs_of(sent)  # removed when the job is over

    @property
    def scene(self):
        return bpy.data.scenes.get(self.scene_name)

    def source_strip(self):
        """The job's strip, by id (it may have been renamed since), else by name."""
        scene = self.scene
        identity.settle(scene)  # a copy made while the job ran gets its own id: the original keeps the job's
        strip = compat.find_strip(scene, self.strip_uid)
        if strip is None and self.strip_name and scene is not None:
            strip = next((s for s in compat.all_strips(scene.sequence_editor) if s.name == self.strip_name), None)
        return strip


def current():
    return _job


def known_adapters():
    return list(_adapters)


def set_adapters(names, settings=None):
    """Remembers the adapters the daemon has (for the panel's search field, also in `settings`). The chosen
    adapter is a name, so a longer or reordered list never changes it."""
    global _adapters
    _adapters = sorted(set(names))
    if settings is not None:
        settings.adapter_names.clear()
        for name in _adapters:
            settings.adapter_names.add().name = name


def last_info():
    return _last_info


def set_last_info(info):
    global _last_info
    _last_info = info
    status.note_welcome(info["welcome"])
    _remember_capabilities(info["welcome"])


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
        settings.busy, settings.job_kind, settings.job_status, settings.job_progress = True, job.kind, "starting", 0.0
        settings.job_id = getattr(job.task, "job_id", None) or ""
        settings.job_pending = False
        settings.job_strip_uid = job.strip_uid or ""
        settings.job_edit_frame = job.edit_frame
        settings.job_output_dir = job.output_dir or ""
        settings.job_temp_dirs = os.pathsep.join(job.temp_dirs)
    job.task.start()
    if not bpy.app.background:
        status.show(True)
        if not bpy.app.timers.is_registered(_timer):
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
    status.redraw()
    running = _job is not None and not _job.ended
    if not running:
        status.show(False)
    return 0.2 if running else None


def pump():
    """Applies the worker's events to Blender. Returns True while the job runs."""
    job = _job
    if job is None or job.ended:
        return False
    settings = job.scene.vidprior if job.scene else None
    for event in job.task.drain():
        kind = event[0]
        if kind == "connected":
            status.note_welcome(event[1])
            _remember_capabilities(event[1])
        elif kind == "accepted" and settings is not None:
            settings.job_id = event[1]["id"]
            settings.job_status = "queued"
            settings.job_pending = True  # from here on, the job can be re-attached by its id
        elif kind == "progress":
            p = event[1]
            job.phase = p.get("stage", "") if p.get("upload") else ""
            job.fraction = float(p.get("fraction") or 0.0)
            if settings is not None:
                settings.job_progress = job.fraction
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
            if event[1] == "E_CONNECTION":
                status.note_lost(event[2])
            _finish(job, settings)
    return not job.ended


def _remember_capabilities(welcome):
    global _capabilities
    _capabilities = list(welcome.get("capabilities", []))


def _describe(p):
    stage = p.get("stage", "")
    if p.get("iterations"):
        loss = p.get("loss")
        return "%s %d/%d%s" % (stage, p.get("iteration", 0), p["iterations"],
                               " loss %.4f" % loss if loss is not None else "")
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
        # A lost daemon leaves the job to re-attach to (it resumes when the daemon restarts); anything else
        # (done, failed, cancelled) is over.
        settings.job_pending = job.error is not None and job.error[0] == "E_CONNECTION" and bool(settings.job_id)
    if settings is None or not settings.job_pending:
        # Over: its rendered frames go (a job the next one, e.g. run after its keyframe edit, still uses stays).
        next_job = _job if _job is not None and _job is not job and not _job.ended else None
        still_used = set(next_job.temp_dirs) if next_job is not None else set()
        frames.remove_temp_dirs([d for d in job.temp_dirs if d not in still_used])
        if settings is not None and next_job is None:
            settings.job_temp_dirs = ""
    if job.error is not None and not bpy.app.background:
        code, message = job.error
        status.report_async("WARNING" if code == "E_CANCELLED" else "ERROR", status.error_text(job.kind, code, message))


@persistent
def _on_load(_):
    """A file saved while a job ran: that job is not running in this Blender. The panel offers Re-attach /
    Forget (the job id, strip id and output folder are in the file) instead of "busy" forever."""
    live = _job is not None and not _job.ended
    for scene in bpy.data.scenes:
        s = getattr(scene, "vidprior", None)
        if s is None or not s.busy or (live and _job.scene_name == scene.name):
            continue
        s.busy = False
        s.job_pending = bool(s.job_id)
        s.job_status = "interrupted by closing Blender: re-attach or forget" if s.job_id else "interrupted"


def register():
    if _on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load)


def unregister():
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
