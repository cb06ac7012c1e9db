"""Every difference between Blender versions that the add-on meets, in one place (3.4 through 5.x).

- 4.4 renamed `SequenceEditor.sequences`/`sequences_all` to `strips`/`strips_all` (and `Sequence` to `Strip`).
- 5.x prefers `context.sequencer_scene` for the scene the sequencer edits (None in `-b --factory-startup`).
- 5.x needs `image_settings.media_type` set before `file_format` for video output.
- Filmic (3.x) and AgX (4.x+) change pixel values: frames are rendered with the Standard view transform.
"""
import bpy

BLENDER_VERSION = bpy.app.version


def sequencer_scene(context):
    """The scene whose sequencer the user works in."""
    scene = getattr(context, "sequencer_scene", None)
    if scene is None:
        scene = context.scene
    return scene


def ensure_sequence_editor(scene):
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    return scene.sequence_editor


def strips_collection(editor):
    """The top-level strips collection (where new strips are added)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor):
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def active_strip(scene):
    editor = scene.sequence_editor
    if editor is None:
        return None
    return editor.active_strip


UID_KEY = "vidprior_uid"


def strip_uid(strip):
    """The strip's own id (a custom property): it survives renames, saves and undo, unlike the name."""
    uid = strip.get(UID_KEY)
    if not uid:
        import uuid

        uid = strip[UID_KEY] = uuid.uuid4().hex
    return uid


def find_strip(scene, uid):
    """The strip whose id is `uid`, or None."""
    if not uid or scene is None:
        return None
    return next((s for s in all_strips(scene.sequence_editor) if s.get(UID_KEY) == uid), None)


def strip_range(strip):
    """(first frame, end frame exclusive) of what the strip shows in the timeline."""
    start = strip.frame_final_start
    end = strip.frame_final_end
    return int(start), int(end)


def set_strip_range(strip, start, end):
    """Trims `strip` to show frames [start, end)."""
    if hasattr(strip, "left_handle"):
        strip.left_handle = start
        strip.right_handle = end
    else:
        strip.frame_final_start = start
        strip.frame_final_end = end


def free_channel_above(editor, strip):
    """The lowest channel above `strip` with nothing overlapping its frame range."""
    start, end = strip_range(strip)
    busy = set()
    for other in all_strips(editor):
        o_start, o_end = strip_range(other)
        if o_start < end and start < o_end:
            busy.add(other.channel)
    channel = strip.channel + 1
    while channel in busy:
        channel += 1
    if channel > 128:
        raise RuntimeError("no free sequencer channel above channel %d" % strip.channel)
    return channel


def new_image_strip(editor, name, directory, filenames, channel, frame_start):
    """Adds an image-sequence strip showing `filenames` from `directory`, one per frame."""
    import os

    strips = strips_collection(editor)
    first = os.path.join(directory, filenames[0])
    strip = strips.new_image(name=name, filepath=first, channel=channel, frame_start=frame_start)
    for filename in filenames[1:]:
        strip.elements.append(filename)
    # new_image may set the end from the first element only; recompute the range from the elements.
    if hasattr(strip, "frame_duration") and strip.frame_final_duration != len(filenames):
        set_strip_range(strip, frame_start, frame_start + len(filenames))
    return strip


TRANSFORM_KEYS = ("scale_x", "scale_y", "offset_x", "offset_y", "rotation")
CROP_KEYS = ("min_x", "max_x", "min_y", "max_y")


def copy_placement(source, target):
    """Shows `target` where `source` is: same transform (Fit mode scale, offset, rotation, origin) and crop."""
    for key in TRANSFORM_KEYS:
        setattr(target.transform, key, getattr(source.transform, key))
    if hasattr(source.transform, "origin"):
        target.transform.origin = source.transform.origin
    for key in CROP_KEYS:
        setattr(target.crop, key, getattr(source.crop, key))


def own_pixels(strip):
    """Shows the strip's own pixels (no transform, crop, opacity, blend or mute); returns what to restore."""
    saved = {key: getattr(strip.transform, key) for key in TRANSFORM_KEYS}
    saved.update({"crop_" + key: getattr(strip.crop, key) for key in CROP_KEYS})
    saved.update(mute=strip.mute, blend_alpha=strip.blend_alpha, blend_type=strip.blend_type)
    strip.transform.scale_x = strip.transform.scale_y = 1.0
    strip.transform.offset_x = strip.transform.offset_y = strip.transform.rotation = 0.0
    for key in CROP_KEYS:
        setattr(strip.crop, key, 0)
    strip.mute, strip.blend_alpha, strip.blend_type = False, 1.0, "REPLACE"
    return saved


def restore_pixels(strip, saved):
    for key in TRANSFORM_KEYS:
        setattr(strip.transform, key, saved[key])
    for key in CROP_KEYS:
        setattr(strip.crop, key, saved["crop_" + key])
    strip.mute, strip.blend_alpha, strip.blend_type = saved["mute"], saved["blend_alpha"], saved["blend_type"]


def set_standard_view(scene):
    """Pixels out equal pixels in: no Filmic/AgX tone mapping, no look, neutral exposure."""
    vs = scene.view_settings
    saved = (vs.view_transform, vs.look, vs.exposure, vs.gamma)
    vs.view_transform = "Standard"
    try:
        vs.look = "None"
    except TypeError:
        pass
    vs.exposure = 0.0
    vs.gamma = 1.0
    return saved


def restore_view(scene, saved):
    vs = scene.view_settings
    vs.view_transform, look, vs.exposure, vs.gamma = saved[0], saved[1], saved[2], saved[3]
    try:
        vs.look = look
    except TypeError:
        pass


def set_png_output(scene):
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "8"


def is_movie_strip(strip):
    return strip.type == "MOVIE"


def is_image_strip(strip):
    return strip.type == "IMAGE"
