"""The sequencer sidebar panel (View > Sidebar > vidprior)."""
import bpy

from . import compat, farm_op, state


class VIDPRIOR_UL_candidates(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_prop, index=0, flt_flag=0):
        image = bpy.data.images.get(item.image_name)
        icon_id = image.preview.icon_id if image is not None and image.preview else 0
        layout.label(text="seed %d" % item.seed, icon_value=icon_id)


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
        strip = compat.active_strip(scene)
        layout.label(text="Strip: %s" % (strip.name if strip else "none selected"), icon="SEQUENCE")
        layout.prop(s, "prompt")
        layout.prop(s, "negative_prompt")
        col = layout.column(align=True)
        col.prop(s, "strength")
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "seed")
        layout.prop(s, "adapter")
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
        if len(s.candidate_list):
            box.template_list("VIDPRIOR_UL_candidates", "", s, "candidate_list", s, "candidate_index", rows=2)
            if 0 <= s.candidate_index < len(s.candidate_list):
                image = bpy.data.images.get(s.candidate_list[s.candidate_index].image_name)
                if image is not None:
                    if image.preview is None:
                        image.preview_ensure()
                    box.template_icon(icon_value=image.preview.icon_id, scale=8.0)
            box.operator("vidprior.use_candidate", icon="CHECKMARK")
        for edit in s.edits:
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

        job = state.current()
        if s.busy or (job is not None and not job.ended):
            box = layout.box()
            box.label(text="%s: %s" % (s.job_kind, s.job_status))
            box.prop(s, "job_progress", text="Progress", slider=True)
            box.operator("vidprior.cancel", icon="CANCEL")
        elif s.job_status:
            layout.label(text="Last job: %s" % s.job_status)


classes = (VIDPRIOR_UL_candidates, VIDPRIOR_PT_panel)

register, unregister = bpy.utils.register_classes_factory(classes)
