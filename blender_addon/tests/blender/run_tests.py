"""Entry point inside Blender:

  blender -b --factory-startup --python-exit-code 1 --python run_tests.py -- ZIP PORT DATA_DIR

Installs the add-on from ZIP with Blender's own install operator, enables it, points it at the daemon on PORT
and runs test_in_blender.py with unittest. DATA_DIR holds the test clip (clip.mp4) and frames (frames/*.png).
"""
import os
import sys
import unittest

import bpy

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
if len(args) < 3:
    raise SystemExit("usage: blender -b --python run_tests.py -- ZIP PORT DATA_DIR")
zip_path, port, data_dir = args[0], int(args[1]), args[2]

bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="vidprior")
prefs = bpy.context.preferences.addons["vidprior"].preferences
prefs.host, prefs.port = "127.0.0.1", port

os.environ["VIDPRIOR_TEST_DATA"] = data_dir
os.environ["VIDPRIOR_TEST_PORT"] = str(port)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_in_blender  # noqa: E402

result = unittest.TextTestRunner(verbosity=2).run(unittest.defaultTestLoader.loadTestsFromModule(test_in_blender))
print("%d passed, %d failed" % (result.testsRun - len(result.failures) - len(result.errors), len(result.failures) + len(result.errors)))
if not result.wasSuccessful():
    raise SystemExit(1)
