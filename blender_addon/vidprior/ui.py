"""The sequencer sidebar panel (View > Sidebar > vidprior)."""
import textwrap

import bpy

from . import compat, farm_op, identity, operators, state, status


def _thumbnail(item):
    image = bpy.data.images.get(item.image_name)
    if image is None:
        return 0
    if image.preview is None:
        image.preview_ensure()
    return image.preview.icon_id if image.preview else 0


def draw_connection(layout):
    """The first line: is the daemon there, which model does it run (a warning for random weights)."""
    info = status.connection()
    row = layout.row(align=True)
    if info["state"] == "connected":
        row.label(text="Connected: " + info["text"], icon="LINKED")
    elif info["state"] == "lost":
        row.label(text="Not connected: start `vidprior serve`", icon="UNLINKED")
    else:
        row.label(text="Daemon not checked yet (`vidprior serve`)", icon="UNLINKED")
    row.operator("vidprior.test_connection", text="", icon="FILE_REFRESH")
    if info["state"] == "lost" and info["text"]:
        layout.label(text=info["text"], icon="ERROR")
    if info["embedded"]:
        box = layout.box()
        box.label(text="The daemon runs the embedded random-weight model:", icon="ERROR")
        box.label(text="results are noise. Start it with --model (an SD 1.x model).")


def draw_job(layout, s):
    """The running job (progress as text, not a slider), or an unfinished one to re-attach or forget."""
    job = state.current()
    if s.busy or (job is not None and not job.ended):
        box = layout.box()
        row = box.row()
        row.label(text=status.eta_text(job) if job is not None and not job.ended else s.job_kind,
                  icon="RENDER_ANIMATION")
        row.operator("vidprior.cancel", text="", icon="CANCEL")
        box.label(text=s.job_status)
    elif s.job_pending and s.job_id:
        box = layout.box()
        box.label(text="Job %s (%s) not placed yet" % (s.job_id, s.job_kind), icon="INFO")
        if s.job_status:
            box.label(text=s.job_status)
        row = box.row(align=True)
        row.operator("vidprior.reattach", icon="LINKED")
        row.operator("vidprior.forget_job", icon="X")
    elif s.job_status.startswith("E_"):
        code, _, message = s.job_status.partition(": ")
        box = layout.box()
        box.label(text="Last job failed (%s):" % code, icon="ERROR")
        box.label(text=message)
        hint = status.error_hint(code)
        if hint:
            col = box.column(align=True)
            for i, line in enumerate(textwrap.wrap(hint[:1].upper() + hint[1:], 48)):
                col.label(text=line, icon="INFO" if i == 0 else "BLANK1")
    elif s.job_status:
        layout.label(text="Last job: %s" % s.job_status)


def draw_candidates(layout, scene, strip):
    """The candidates as a grid of thumbnails, each with its own Use button (by seed, not list position)."""
    s = scene.vidprior
    uid = identity.uid_of(scene, strip)
    shown = [c for c in s.candidate_list if c.strip_uid == uid] if uid else []
    if not shown:
        return
    layout.label(text="Candidates for strip frame %d:" % shown[0].frame)
    grid = layout.grid_flow(row_major=True, columns=2, even_columns=True, even_rows=True, align=True)
    for item in shown:
        cell = grid.column(align=True)
        cell.template_icon(icon_value=_thumbnail(item), scale=5.0)
        cell.operator("vidprior.use_candidate", text="Use seed %d" % item.seed).seed = item.seed


class VIDPRIOR_PT_panel(bpy.types.Panel):
    bl_label = "vidprior"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "vidprior"

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        if scene is None:
            layout.label(text="No scene")
            return
        s = scene.vidprior
        draw_connection(layout)
        draw_job(layout, s)
        strip = compat.active_strip(scene)
        layout.label(text="Strip: %s" % (strip.name if strip else "none selected"), icon="SEQUENCE")
        layout.prop(s, "prompt")
        layout.prop(s, "negative_prompt")
        col = layout.column(align=True)
        col.prop(s, "strength")
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "seed")
        row = layout.row(align=True)
        row.prop(s, "work_size")
        if s.work_size == 0:
            row.label(text="model's native size")
        layout.prop_search(s, "adapter", s, "adapter_names", icon="MODIFIER")
        row = layout.row(align=True)
        row.prop(s, "style_lora")
        row.prop(s, "style_lora_weight", text="")
        layout.prop(s, "output_folder")

        box = layout.box()
        box.label(text="1. Keyframe edit")
        row = box.row(align=True)
        row.prop(s, "edit_strength")
        row.prop(s, "candidates")
        box.operator("vidprior.preview_edits", icon="IMAGE_DATA")
        draw_candidates(box, scene, strip)
        if strip is not None:
            for edit in operators.strip_edits(scene, strip):
                box.label(text="edit: strip frame %d ← %s" % (edit.frame, bpy.path.basename(edit.path)))

        box = layout.box()
        box.label(text="2. Fine-tune")
        row = box.row(align=True)
        row.prop(s, "finetune_frames")
        row.prop(s, "iterations")
        box.prop(s, "full_finetune")
        box.operator("vidprior.finetune_strip", icon="MOD_SMOOTH")

        box = layout.box()
        box.label(text="3. Stylize")
        box.operator("vidprior.stylize_strip", icon="RENDER_ANIMATION")
        box.operator("vidprior.run_method", text="Fine-tune and Stylize (all steps)", icon="PLAY")
        if farm_op.farm_offered():
            box.operator("vidprior.render_on_farm", icon="NETWORK_DRIVE")

        box = layout.box()
        box.label(text="Deflicker a result (active strip + its source)")
        box.operator("vidprior.deflicker_strips", icon="MOD_SMOOTH")


classes = (VIDPRIOR_PT_panel,)

register, unregister = bpy.utils.register_classes_factory(classes)
