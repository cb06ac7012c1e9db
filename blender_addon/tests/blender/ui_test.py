"""The add-on in Blender's UI (not -b), under Xvfb: there, operators start a job and return at once, a timer
follows the job to its end, and the sidebar panel draws, idle and with the job's progress. None of that runs in
`blender -b`. Then the add-on's preferences draw.

  xvfb-run -a blender --factory-startup FILE.blend --python-exit-code 1 --python ui_test.py -- MODULE PORT DATA_DIR

MODULE is the enabled add-on's module (vidprior, or bl_ext.user_default.vidprior). Prints "UI test passed" and
quits with 0, or prints "UI test FAILED: why" and exits 1 (a timer cannot fail the run by raising).
"""
import glob
import importlib
import os
import sys
import traceback

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
module, port, data_dir = args[0], int(args[1]), args[2]
bpy.ops.preferences.addon_enable(module=module)
bpy.context.preferences.addons[module].preferences.port = port
compat = importlib.import_module(module + ".compat")
state = importlib.import_module(module + ".state")
TICK, LIMIT_TICKS = 0.25, 480  # two minutes
drawn, prefs_drawn, errors, ticks = [], [], [], [0]


def fail(why):
    print("UI test FAILED: %s" % why, flush=True)
    os._exit(1)


# Sidebar tabs of the sequencer: Blender < 4 cannot tell a script which tab is open, so there the probe goes
# into each of them (only the open one draws).
SEQUENCER_TABS = ("Strip", "Modifiers", "Proxy & Cache", "Cache", "Adjust", "Time", "Source", "Tool", "View",
                  "Metadata", "vidprior")
probes = []


def add_panel_probe(category, suffix=""):
    """The add-on's panel draw, shown in the sidebar tab that is open (a script cannot switch tabs)."""
    panel = bpy.types.VIDPRIOR_PT_panel

    def draw(self, context):
        try:
            panel.draw(self, context)
            drawn.append(context.scene.vidprior.job_status)  # "" before a job, then its progress, "done"
        except Exception:  # noqa: BLE001 - reported as the test's failure
            errors.append(traceback.format_exc())

    probe = type("VIDPRIOR_PT_ui_test_probe" + suffix, (bpy.types.Panel,), {
        "bl_label": "vidprior (UI test)", "bl_space_type": "SEQUENCE_EDITOR", "bl_region_type": "UI",
        "bl_category": category, "draw": draw})
    bpy.utils.register_class(probe)
    probes.append(probe)


def start():
    # 1. A sequencer with its sidebar and an image strip.
    window = bpy.context.window_manager.windows[0]
    area = max(window.screen.areas, key=lambda a: a.width * a.height)
    area.type = "SEQUENCE_EDITOR"
    area.spaces.active.show_region_ui = True
    scene = window.scene
    editor = compat.ensure_sequence_editor(scene)
    files = sorted(glob.glob(os.path.join(data_dir, "frames", "*.png")))
    strip = compat.new_image_strip(editor, "ui", os.path.dirname(files[0]), [os.path.basename(f) for f in files], 2, 1)
    editor.active_strip = strip
    s = scene.vidprior
    s.prompt, s.steps, s.strength, s.output_folder = "a watercolor painting", 20, 1.0, os.path.join(data_dir, "out-ui")
    region = next(r for r in area.regions if r.type == "UI")
    ctx = dict(window=window, area=area, region=region, scene=scene, editor=editor, strip=strip)
    bpy.app.timers.register(guarded(lambda: run_when_drawn(ctx)), first_interval=TICK)


status = importlib.import_module(module + ".status")
status_drawn = []
_status_draw = status.draw_status_bar


def status_draw(self, context):
    try:
        _status_draw(self, context)
        job = state.current()
        if job is not None and not job.ended:
            status_drawn.append(status.eta_text(job))
    except Exception:  # noqa: BLE001 - reported as the test's failure
        errors.append(traceback.format_exc())


status.draw_status_bar = status_draw  # what the add-on appends to the status bar when a job starts


def run_when_drawn(ctx):
    # 2. Once the sidebar shows a tab, the panel is drawn there; after its first (idle) draw, start the job.
    tick(ctx)
    if not drawn:
        return TICK
    with bpy.context.temp_override(window=ctx["window"], area=ctx["area"], region=ctx["region"]):
        result = bpy.ops.vidprior.stylize_strip()
    # In the UI the operator returns while the job runs (a timer applies its events on the main thread).
    job = state.current()
    if result != {"FINISHED"} or job is None or job.ended:
        fail("stylize_strip returned %s; the job should be running (%s)" % (result, ctx["scene"].vidprior.job_status))
    drawn.clear()
    bpy.app.timers.register(guarded(lambda: follow(ctx)), first_interval=TICK)
    return None


def tick(ctx):
    ticks[0] += 1
    ctx["area"].tag_redraw()
    region = ctx["region"]
    if not probes:
        if hasattr(region, "active_panel_category"):  # Blender 4.0+
            if region.active_panel_category != "UNSUPPORTED":
                add_panel_probe(region.active_panel_category)
        else:
            for i, tab in enumerate(SEQUENCER_TABS):
                add_panel_probe(tab, "_%d" % i)
    if errors:
        fail("a draw raised:\n" + errors[0])
    if ticks[0] > LIMIT_TICKS:
        fail("no end after %d s: job status %r, panel drawn with %s" % (
            LIMIT_TICKS * TICK, ctx["scene"].vidprior.job_status, drawn))


def follow(ctx):
    # 3. The timer follows the job; the panel draws its progress while it runs, and its end.
    tick(ctx)
    job = state.current()
    if not job.ended or not drawn or drawn[-1] != "done":
        return TICK
    busy = [status for status in drawn if status not in ("", "done")]
    if not busy:
        fail("the panel never drew the running job (drawn with %s)" % drawn)
    # 4. The job's result: a new image strip over the same frames.
    if job.error is not None:
        fail("the job failed: %s %s" % job.error)
    editor, strip = ctx["editor"], ctx["strip"]
    added = [s for s in compat.all_strips(editor) if s.name != strip.name]
    if len(added) != 1 or compat.strip_range(added[0]) != compat.strip_range(strip):
        fail("expected one new strip over %s, got %s" % (
            compat.strip_range(strip), [(s.name, compat.strip_range(s)) for s in added]))
    if not status_drawn:
        fail("the status bar never drew the running job's progress")
    print("UI test: job %s followed by the timer, new strip %r, panel drawn while running with %s, status bar "
          "with %s" % (ctx["scene"].vidprior.job_id, added[0].name, sorted(set(busy)), status_drawn[-1]), flush=True)
    # 5. The user edits something else and undoes that edit: the result strip stays (the add-on made its
    # placement an undo step; the operator's own returned before the strip existed).
    names = sorted(s.name for s in compat.all_strips(editor))
    with bpy.context.temp_override(window=ctx["window"], area=ctx["area"], region=ctx["region"]):
        ctx["scene"].vidprior.prompt = "an edit after the job"
        bpy.ops.ed.undo_push(message="UI test edit")
        bpy.ops.ed.undo()
    scene = ctx["scene"] = ctx["window"].scene  # undo reloads the data: earlier references are stale
    after = sorted(s.name for s in compat.all_strips(scene.sequence_editor))
    if after != names:
        fail("undo after a later edit changed the strips from %s to %s" % (names, after))
    # 6. Candidates for the active strip draw as a grid of thumbnails.
    strip = next(s for s in compat.all_strips(scene.sequence_editor) if s.name == "ui")
    scene.sequence_editor.active_strip = strip
    files = sorted(glob.glob(os.path.join(data_dir, "frames", "*.png")))
    item = scene.vidprior.candidate_list.add()
    item.seed, item.frame, item.strip_uid, item.path = 7, 0, compat.strip_uid(strip), files[0]
    item.image_name = bpy.data.images.load(files[0], check_existing=True).name
    # 7. A job that fails (the daemon is not there) is reported where the user sees it.
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.port = closed_port()
    with bpy.context.temp_override(window=ctx["window"], area=ctx["area"], region=ctx["region"]):
        result = bpy.ops.vidprior.stylize_strip()
    if result != {"FINISHED"}:
        fail("stylize_strip with the daemon down returned %s" % result)
    drawn.clear()
    bpy.app.timers.register(guarded(lambda: follow_failure(ctx, prefs, port)), first_interval=TICK)
    return None


def closed_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
    s.close()
    return free


reports = []
_report_async = status.report_async


def report_async(level, message):
    reports.append((level, message))
    _report_async(level, message)


status.report_async = report_async  # what a job that ends while no operator runs reports through


def follow_failure(ctx, prefs, daemon_port):
    tick(ctx)
    job = state.current()
    if not job.ended or not drawn:
        return TICK
    prefs.port = daemon_port
    if job.error is None or job.error[0] != "E_CONNECTION":
        fail("the job with the daemon down ended with %s" % (job.error,))
    if not any(level == "ERROR" and "vidprior serve" in message for level, message in reports):
        fail("no ERROR report for the failed job (reports: %s)" % reports)
    if status.connection()["state"] != "lost":
        fail("the connection line does not show the daemon as gone: %s" % status.connection())
    print("UI test: failure reported as %r" % reports[-1][1], flush=True)
    # 8. The preferences, shown as the user reaches them (Preferences > Add-ons, the add-on expanded).
    prefs_class = importlib.import_module(module + ".prefs").VIDPRIOR_AP_preferences
    prefs_draw = prefs_class.draw

    def draw(self, context):
        try:
            prefs_draw(self, context)
            prefs_drawn.append(True)
        except Exception:  # noqa: BLE001 - reported as the test's failure
            errors.append(traceback.format_exc())

    prefs_class.draw = draw
    with bpy.context.temp_override(window=ctx["window"]):
        bpy.ops.preferences.addon_show(module=module)
    bpy.app.timers.register(guarded(lambda: quit_when_prefs_drawn(ctx)), first_interval=TICK)
    return None


def quit_when_prefs_drawn(ctx):
    tick(ctx)
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()
    if not prefs_drawn:
        return TICK
    print("UI test passed", flush=True)
    bpy.ops.wm.quit_blender()
    return None


def guarded(step):
    """An exception in a timer is only printed: turn it into the test's failure."""
    def run():
        try:
            return step()
        except Exception:  # noqa: BLE001
            fail(traceback.format_exc())
    return run


# The window exists once Blender's event loop runs: start from a timer.
bpy.app.timers.register(guarded(start), first_interval=1.0)
