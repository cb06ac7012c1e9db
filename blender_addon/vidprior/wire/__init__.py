"""The add-on's wire code: websocket + MessagePack on the standard library, and the vidprior protocol client.
Nothing in this package imports bpy, so it runs (and is tested) outside Blender too."""
