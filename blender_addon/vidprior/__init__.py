"""vidprior for Blender: stylize sequencer strips with Stable Diffusion through the vidprior daemon, with
per-video fine-tuning for temporal consistency. The add-on is thin: it sends frames and receives frames; the
daemon (`vidprior serve`) does the work.

Blender 3.4–4.1 read `bl_info`; 4.2+ also install it as an extension (blender_manifest.toml).
"""

bl_info = {
    "name": "vidprior",
    "author": "vidprior developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar > vidprior",
    "description": "Temporally consistent video stylization with Stable Diffusion, through the vidprior daemon",
    "category": "Sequencer",
}

if "bpy" in locals():  # reloading (F3 > Reload Scripts): keep module objects fresh
    import importlib

    for _name in ("compat", "identity", "frames", "status", "state", "results", "props", "prefs", "operators",
                  "jobs_op", "deflicker_op", "farm_op", "ui"):
        if _name in locals():
            importlib.reload(locals()[_name])

from . import compat, deflicker_op, farm_op, frames, identity, jobs_op, operators, prefs, props  # noqa: E402,F401
from . import results, state, status, ui  # noqa: E402,F401

_modules = (props, prefs, state, operators, jobs_op, deflicker_op, farm_op, ui, status)


def register():
    for module in _modules:
        module.register()


def unregister():
    job = state.current()
    if job is not None and not job.ended:
        job.task.cancel()
    for module in reversed(_modules):
        module.unregister()
