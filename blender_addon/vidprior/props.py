"""Settings the sequencer panel edits, stored on the scene (`scene.vidprior`)."""
import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


class VIDPRIOR_PG_candidate(bpy.types.PropertyGroup):
    """One keyframe-edit candidate the daemon returned, for one frame of one strip (kept in the .blend)."""
    seed: IntProperty(name="Seed")
    frame: IntProperty(name="Strip frame", description="Frame index inside the strip (0 = first)")
    strip_uid: StringProperty(name="Strip id")
    path: StringProperty(name="Image", subtype="FILE_PATH")
    image_name: StringProperty(name="Blender image")


class VIDPRIOR_PG_edit(bpy.types.PropertyGroup):
    """A chosen keyframe edit: the strip it belongs to (its id, which survives renames), the strip-relative frame
    index and the edited image."""
    strip_uid: StringProperty(name="Strip id")
    frame: IntProperty(name="Frame")
    path: StringProperty(name="Edited image", subtype="FILE_PATH")


class VIDPRIOR_PG_strip_owner(bpy.types.PropertyGroup):
    """Which strip owns an id (`name` is the id): a copy of the strip carries the same id (identity.py)."""
    strip_name: StringProperty(name="Strip")


class VIDPRIOR_PG_name(bpy.types.PropertyGroup):
    """A name in a list the panel searches (adapters the daemon listed)."""


class VIDPRIOR_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What the video should look like")
    negative_prompt: StringProperty(name="Negative prompt", description="What to avoid")
    strength: FloatProperty(name="Strength", default=0.45, min=0.01, max=1.0,
                            description="How far from the original frames (0.45; 0.325 for people)")
    edit_strength: FloatProperty(name="Edit strength", default=0.75, min=0.01, max=1.0,
                                 description="Strength of the keyframe edit previews")
    steps: IntProperty(name="Steps", default=50, min=1, max=1000)
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=50.0)
    seed: IntProperty(name="Seed", default=0, min=0)
    # Sent as params.work_size only when set: 0 leaves the daemon's default (the model's native short side, frames
    # never scaled up), which is not the protocol's 0 ("the frames' own size").
    work_size: IntProperty(name="Working size", default=0, min=0, max=16384, subtype="PIXEL",
                           description="Short side, in pixels, the model works at (aspect kept, results scaled back "
                                       "to the strip's size; memory grows with its square). 0: the model's native "
                                       "size")
    candidates: IntProperty(name="Candidates", default=4, min=1, max=16)
    finetune_frames: IntProperty(name="Frames", default=30, min=1, max=1000,
                                 description="Frames sampled across the strip for fine-tuning")
    iterations: IntProperty(name="Iterations", default=1000, min=1, max=100000)
    full_finetune: BoolProperty(name="Whole UNet", default=False,
                                description="Fine-tune every UNet weight (the method as written; needs a big GPU) "
                                            "instead of a LoRA")
    # By name, not by list position: the daemon's list changes as adapters are trained.
    adapter: StringProperty(name="Adapter", description="Fine-tuned adapter to stylize with (empty: the base model)")
    adapter_names: CollectionProperty(type=VIDPRIOR_PG_name)
    style_lora: StringProperty(name="Style LoRA", subtype="FILE_PATH",
                               description="A LoRA .safetensors (kohya/A1111 or diffusers) merged into the model, "
                                           "or the name of one in the daemon's adapters folder")
    style_lora_weight: FloatProperty(name="LoRA weight", default=1.0, min=-10.0, max=10.0)
    output_folder: StringProperty(name="Output folder", subtype="DIR_PATH",
                                  description="Where stylized frames go (default: a 'vidprior' folder next to the "
                                              ".blend)")
    candidate_list: CollectionProperty(type=VIDPRIOR_PG_candidate)
    candidate_index: IntProperty(name="Candidate", default=0)
    edits: CollectionProperty(type=VIDPRIOR_PG_edit)
    strip_owners: CollectionProperty(type=VIDPRIOR_PG_strip_owner)
    # Read-only status mirrored from the running job, for the panel.
    job_id: StringProperty(name="Job")
    job_kind: StringProperty(name="Job kind")
    job_status: StringProperty(name="Status")
    job_progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    busy: BoolProperty(name="Busy", default=False)
    # A job whose result is not placed yet (running, or interrupted by a reopen or a lost daemon): enough to
    # re-attach to it by id and place its frames over its strip, found by id even after a rename.
    job_pending: BoolProperty(name="Result not placed yet", default=False)
    job_strip_uid: StringProperty(name="Strip id")
    job_edit_frame: IntProperty(name="Edit frame", description="edit-keyframe: the strip frame its candidates are for")
    job_output_dir: StringProperty(name="Output folder", subtype="DIR_PATH")
    job_temp_dirs: StringProperty(name="Rendered frames", description="The job's temporary render folders "
                                  "(removed when it ends), separated by os.pathsep")


classes = (VIDPRIOR_PG_candidate, VIDPRIOR_PG_edit, VIDPRIOR_PG_strip_owner, VIDPRIOR_PG_name, VIDPRIOR_PG_settings)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vidprior = PointerProperty(type=VIDPRIOR_PG_settings)


def unregister():
    del bpy.types.Scene.vidprior
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
