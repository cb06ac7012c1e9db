"""Getting a strip's frames out of Blender and stylized frames back in. Main thread only (uses bpy).

Image strips: the files the strip shows are read as they are (no colour management in between).
Movie strips: the strip is rendered alone, with the Standard view transform so colours survive the round trip.
"""
import os
import tempfile

import bpy

from . import compat

DIRECT_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


TEMP_PREFIX = "vidprior-frames-"


def temp_dirs_of(paths):
    """The add-on's temporary render folders among the folders of `paths`."""
    return sorted({os.path.dirname(p) for p in paths if os.path.basename(os.path.dirname(p)).startswith(TEMP_PREFIX)})


def remove_temp_dirs(dirs):
    """Removes the add-on's own render folders (nothing else: the name is checked)."""
    import shutil

    for folder in dirs:
        if os.path.basename(folder.rstrip(os.sep)).startswith(TEMP_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)


class FrameError(RuntimeError):
    """A strip whose frames cannot be read; the message is shown to the user."""


def strip_frame_files(scene, strip, workdir, only_frames=None):
    """Returns [(frame_number, path)] for every frame the strip shows (or only those of `only_frames`), in order:
    the strip's own pixels, whatever its Fit mode, transform, crop, opacity, blend or mute."""
    start, end = compat.strip_range(strip)
    if end <= start:
        raise FrameError("strip '%s' shows no frames" % strip.name)
    wanted = list(range(start, end)) if only_frames is None else sorted(f for f in set(only_frames) if start <= f < end)
    if not wanted:
        raise FrameError("strip '%s' (frames %d-%d) shows none of the frames asked for" % (strip.name, start, end - 1))
    if compat.is_image_strip(strip):
        files = _image_strip_files(strip, wanted)
        if files is not None:
            return files
    if compat.is_image_strip(strip) or compat.is_movie_strip(strip):
        return _render_strip(scene, strip, wanted, workdir)
    raise FrameError("strip '%s' is a %s strip: choose a movie or image strip" % (strip.name, strip.type.lower()))


def _image_strip_files(strip, wanted):
    """The image files behind an image strip, or None when they must be rendered (e.g. EXR)."""
    directory = bpy.path.abspath(strip.directory)
    files = []
    for frame in wanted:
        element = strip.strip_elem_from_frame(frame)
        if element is None:
            return None
        path = os.path.join(directory, element.filename)
        if os.path.splitext(path)[1].lower() not in DIRECT_IMAGE_EXTENSIONS:
            return None
        if not os.path.isfile(path):
            raise FrameError("image '%s' of strip '%s' does not exist" % (path, strip.name))
        files.append((frame, path))
    return files


def _strip_size(strip, scene):
    elements = getattr(strip, "elements", None)
    if elements and len(elements) and elements[0].orig_width:
        return elements[0].orig_width, elements[0].orig_height
    return scene.render.resolution_x, scene.render.resolution_y


def _runs(numbers):
    """Sorted frame numbers as (first, last) runs of consecutive frames."""
    runs = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return runs


def _render_strip(scene, strip, wanted, workdir):
    """Renders frames `wanted` of `strip` alone, at its source size and with its own pixels, to PNGs in `workdir`.
    Everything changed for the render (other strips muted, the strip's placement, the output) is restored."""
    editor = scene.sequence_editor
    others = [s for s in compat.all_strips(editor) if s != strip and not s.mute]
    render = scene.render
    saved = {
        "frame_start": scene.frame_start, "frame_end": scene.frame_end, "frame_step": scene.frame_step,
        "frame_current": scene.frame_current,
        "filepath": render.filepath, "use_sequencer": render.use_sequencer, "use_compositing": render.use_compositing,
        "resolution_x": render.resolution_x, "resolution_y": render.resolution_y,
        "resolution_percentage": render.resolution_percentage,
        "file_format": render.image_settings.file_format, "color_mode": render.image_settings.color_mode,
        "color_depth": render.image_settings.color_depth,
    }
    media_type = getattr(render.image_settings, "media_type", None)
    view = compat.set_standard_view(scene)
    width, height = _strip_size(strip, scene)
    placement = compat.own_pixels(strip)
    try:
        for s in others:
            s.mute = True
        render.use_sequencer = True
        render.use_compositing = False
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        compat.set_png_output(scene)
        render.filepath = os.path.join(workdir, "frame_")
        scene.frame_step = 1  # every frame of the strip, whatever step the scene renders with
        for first, last in _runs(wanted):
            scene.frame_start, scene.frame_end = first, last
            bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        compat.restore_pixels(strip, placement)
        for s in others:
            s.mute = False
        compat.restore_view(scene, view)
        if media_type is not None:
            render.image_settings.media_type = media_type
        for key in ("file_format", "color_mode", "color_depth"):
            try:
                setattr(render.image_settings, key, saved[key])
            except TypeError:
                pass
        for key in ("frame_start", "frame_end", "frame_step"):
            setattr(scene, key, saved[key])
        for key in ("filepath", "use_sequencer", "use_compositing", "resolution_x", "resolution_y",
                    "resolution_percentage"):
            setattr(render, key, saved[key])
        scene.frame_set(saved["frame_current"])
    files = []
    for frame in wanted:
        path = os.path.join(workdir, "frame_%04d.png" % frame)
        if not os.path.isfile(path):
            raise FrameError("rendering frame %d of strip '%s' produced no image" % (frame, strip.name))
        files.append((frame, path))
    return files


def output_base(prefs_folder):
    """The chosen output folder, else a 'vidprior' folder next to the .blend, else one in the temp folder."""
    if prefs_folder:
        return bpy.path.abspath(prefs_folder)
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), "vidprior")
    return os.path.join(tempfile.gettempdir(), "vidprior")


def render_folder(prefs_folder):
    """A fresh folder for a job's rendered frames, beside its outputs: a daemon on this machine started with
    one `--allow-dir` over the project reads them by path."""
    base = output_base(prefs_folder)
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base)


def output_folder(prefs_folder, strip_name, job_id):
    """Where stylized frames of a job go (in output_base)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in strip_name)[:60] or "strip"
    base = output_base(prefs_folder)
    folder = os.path.join(base, "%s_%s" % (safe, job_id))
    os.makedirs(folder, exist_ok=True)
    return folder


def add_result_strip(scene, source, folder, filenames, frame_start=None):
    """Adds the stylized frames as an image strip above `source`, over the same frames (from `frame_start`, else
    the whole strip) and placed as the source is (same Fit mode scale, offset, rotation and crop)."""
    editor = compat.ensure_sequence_editor(scene)
    start, end = compat.strip_range(source)
    if frame_start is None and len(filenames) != end - start:
        raise FrameError("expected %d stylized frames for strip '%s', got %d" % (
            end - start, source.name, len(filenames)))
    channel = compat.free_channel_above(editor, source)
    name = (source.name + " vidprior")[:60]
    first = start if frame_start is None else frame_start
    strip = compat.new_image_strip(editor, name, folder, filenames, channel, first)
    compat.copy_placement(source, strip)
    return strip
