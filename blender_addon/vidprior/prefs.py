"""Add-on preferences: where the daemon is, and its token."""
import bpy
from bpy.props import IntProperty, StringProperty

from . import state


class VIDPRIOR_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    host: StringProperty(name="Host", default="127.0.0.1", description="Where `vidprior serve` runs")
    port: IntProperty(name="Port", default=8765, min=1, max=65535)
    token: StringProperty(name="Token", subtype="PASSWORD", description="The daemon's --token, if it has one")

    def draw(self, context):
        layout = self.layout
        row = layout.row()
        row.prop(self, "host")
        row.prop(self, "port")
        layout.prop(self, "token")
        layout.operator("vidprior.test_connection", icon="LINKED")
        info = state.last_info()
        if info:
            welcome = info["welcome"]
            box = layout.box()
            box.label(text="vidprior %s (protocol %s), provider: %s, model: %s" % (
                welcome["server"]["version"], welcome["protocol"], welcome.get("ep"), welcome.get("model", "?")))
            for model in info["models"].get("models", []):
                box.label(text="model: %s%s" % (model["name"], " (default)" if model.get("default") else ""))
            adapters = info["models"].get("adapters", [])
            box.label(text="adapters: %s" % (", ".join(a["name"] for a in adapters) or "none"))


def register():
    bpy.utils.register_class(VIDPRIOR_AP_preferences)


def unregister():
    bpy.utils.unregister_class(VIDPRIOR_AP_preferences)
