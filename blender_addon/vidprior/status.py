"""What the user sees of the daemon and the running job outside the panel's body: the connection line (with a
hint to start `vidprior serve`, and a warning for the embedded random-weight model), the status-bar progress
with an ETA, and reports from a job that ends while no operator runs. Main thread only."""
import time

import bpy

EMBEDDED_MODEL = "embedded-default"
_connection = {"state": "unknown", "text": "", "embedded": False}


def note_welcome(welcome):
    server = welcome.get("server", {})
    model = welcome.get("model") or "?"
    _connection.update(state="connected", embedded=model == EMBEDDED_MODEL, text="vidprior %s, model %s, %s" % (
        server.get("version", "?"), model, welcome.get("ep", "?")))


def note_lost(message):
    _connection.update(state="lost", text=message, embedded=False)


def connection():
    return dict(_connection)


# Error codes whose bare message does not tell the user what to do: the hint does.
HINTS = {
    "E_CRASHED": "the daemon died twice while running this job (most likely out of memory) and will not resume "
                 "it: lower the Working Size in the vidprior panel, or use a shorter strip, and run it again",
}


def error_hint(code):
    return HINTS.get(code, "")


def error_text(kind, code, message):
    """The report for a job that ended with `code`: what failed and why, or what to do where there is a hint
    (the daemon's own message stays in the panel's status)."""
    if code == "E_CANCELLED":
        return "vidprior: cancelled"
    return "vidprior %s failed: %s (%s)" % (kind, error_hint(code) or message, code)


def eta_text(job, now=None):
    """'stylize 40% · 0:12 left' for a running job: the ETA from the elapsed time and the job's fraction (or
    'stylize: uploading frames 2/5' while the worker uploads them to a remote daemon)."""
    if getattr(job, "phase", ""):
        return "%s: %s" % (job.kind, job.phase)
    now = time.monotonic() if now is None else now
    fraction = max(0.0, min(1.0, job.fraction))
    text = "%s %d%%" % (job.kind, round(fraction * 100))
    elapsed = now - job.started_at
    if 0.02 <= fraction < 1.0 and elapsed > 1.0:
        left = int(elapsed * (1.0 - fraction) / fraction)
        text += " · %d:%02d left" % (left // 60, left % 60) if left < 3600 else " · %dh%02d left" % (
            left // 3600, left % 3600 // 60)
    return text


def draw_status_bar(self, context):
    from . import state

    job = state.current()
    if job is None or job.ended:
        return
    row = self.layout.row(align=True)
    row.label(text="vidprior: " + eta_text(job), icon="RENDER_ANIMATION")
    row.operator("vidprior.cancel", text="", icon="CANCEL", emboss=False)


_shown = [False]


def show(on):
    """Adds (or removes) the vidprior progress in the status bar."""
    if on and not _shown[0]:
        bpy.types.STATUSBAR_HT_header.append(draw_status_bar)
    elif not on and _shown[0]:
        bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    _shown[0] = on
    redraw()


def redraw():
    wm = bpy.context.window_manager if bpy.context else None
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "PREFERENCES"):
                area.tag_redraw()
        _tag_status_bar(window)


def _tag_status_bar(window):
    """The status bar is a global area that scripts cannot tag; clearing the (unset) status text redraws it."""
    override = getattr(bpy.context, "temp_override", None)
    if override is None or window.workspace is None:
        return
    try:
        with override(window=window):
            bpy.context.workspace.status_text_set(None)
    except (RuntimeError, TypeError, AttributeError):
        pass


def report_async(level, message):
    """Shows a report from a timer, where no operator is running: through a tiny operator."""
    try:
        bpy.ops.vidprior.report(level=level, message=message)
    except RuntimeError as err:  # an ERROR report from a script's operator call also raises, after showing
        if message not in str(err):
            print(message)


def unregister():
    show(False)


def register():
    pass
