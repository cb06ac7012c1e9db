#!/usr/bin/env python3
"""Builds the add-on zips into dist/ (run by `npm run build:addon`):

  dist/vidprior-blender-addon.zip      the package folder `vidprior/` inside: Blender 3.4+ legacy add-on
                                       install (Preferences > Add-ons > Install, or addon_install)
  dist/vidprior-blender-extension.zip  the manifest at the root: Blender 4.2+ extension install
                                       (`blender --command extension install-file -r user_default FILE`)
"""
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "vidprior")


def package_files():
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            yield path, os.path.relpath(path, PACKAGE)


def write_zip(path, prefix):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for full, rel in package_files():
            info = zipfile.ZipInfo(os.path.join(prefix, rel).replace(os.sep, "/"), date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(full, "rb") as f:
                z.writestr(info, f.read())
    return path


def main(out_dir):
    legacy = write_zip(os.path.join(out_dir, "vidprior-blender-addon.zip"), "vidprior")
    extension = write_zip(os.path.join(out_dir, "vidprior-blender-extension.zip"), "")
    print(legacy)
    print(extension)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "dist"))
