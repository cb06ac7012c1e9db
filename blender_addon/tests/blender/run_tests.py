"""Entry point inside Blender:

  blender -b --factory-startup --python-exit-code 1 --python run_tests.py -- ZIP PORT DATA_DIR
  blender -b --factory-startup --python-exit-code 1 --python run_tests.py -- --extension MODULE PORT DATA_DIR

Installs the add-on from ZIP with Blender's own install operator (3.4+ legacy add-on), or with --extension
enables the extension already installed as MODULE (4.2+: `blender -c extension install-file -r user_default`
installs it as bl_ext.user_default.vidprior), points it at the daemon on PORT and runs test_in_blender.py
with unittest. DATA_DIR holds the test clip (clip.mp4) and frames (frames/*.png).
"""
import os
import sys
import unittest

import bpy

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
extension = args[:1] == ["--extension"]
if len(args) < (4 if extension else 3):
    raise SystemExit("usage: blender -b --python run_tests.py -- ZIP|--extension MODULE PORT DATA_DIR")
if extension:
    module, port, data_dir = args[1], int(args[2]), args[3]
else:
    module, port, data_dir = "vidprior", int(args[1]), args[2]
    bpy.ops.preferences.addon_install(filepath=args[0], overwrite=True)

bpy.ops.preferences.addon_enable(module=module)
prefs = bpy.context.preferences.addons[module].preferences
prefs.host, prefs.port = "127.0.0.1", port
print("vidprior add-on enabled as %s from %s (Blender %s)" % (
    module, os.path.dirname(sys.modules[module].__file__), bpy.app.version_string))

os.environ["VIDPRIOR_TEST_ADDON"] = module
os.environ["VIDPRIOR_TEST_DATA"] = data_dir
os.environ["VIDPRIOR_TEST_PORT"] = str(port)
# On the host the daemon reads the test's files (it allows the test folder): frames go as paths. In a chroot
# (--extension runs) its paths are not the daemon's, so the add-on falls back to bytes.
os.environ.setdefault("VIDPRIOR_TEST_TRANSPORT", "bytes" if extension else "paths")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_identity  # noqa: E402
import test_in_blender  # noqa: E402
import test_pictures  # noqa: E402
import test_remote  # noqa: E402
import test_restart  # noqa: E402

loader = unittest.defaultTestLoader
if os.environ.get("VIDPRIOR_TEST_ONLY"):  # a substring of test names, for a quick run by hand
    loader.testNamePatterns = ["*%s*" % os.environ["VIDPRIOR_TEST_ONLY"]]
suite = unittest.TestSuite(loader.loadTestsFromModule(m) for m in (test_in_blender, test_identity, test_pictures,
                                                                   test_remote, test_restart))
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors)
skipped = len(result.skipped)
print("%d passed, %d failed, %d skipped%s" % (result.testsRun - failed - skipped, failed, skipped, "".join(
    " [%s: %s]" % (test.id().split(".")[-1], why) for test, why in result.skipped)))
if not result.wasSuccessful():
    raise SystemExit(1)

# The add-on disables cleanly, as when the user unticks it: an error in unregister() fails the run.
import addon_utils  # noqa: E402


def _raise(err):
    raise err


addon_utils.disable(module, default_set=True, handle_error=_raise)
if module in bpy.context.preferences.addons:
    raise SystemExit("%s is still enabled after addon_utils.disable" % module)
print("vidprior add-on disabled cleanly")
