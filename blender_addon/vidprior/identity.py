"""Which strip owns an id. A strip's id is a custom property (compat.UID_KEY), and Blender copies custom properties
with the strip (Shift+D, copy/paste), so a copy starts with its original's id and would share its edits,
candidates and jobs. The rule: the scene remembers, for every id, the name of the strip that owns it
(`scene.vidprior.strip_owners`); when several strips carry one id, the strip of that name keeps it (a strip never
renamed and copied between two operators is found so), else the one whose name is not a copy's ("Shot.001"),
and every other strip gets a fresh id of its own, with nothing attached. Fixing ids writes to the scene, so
operators and job endings call settle(); draw() only reads, through uid_of(). Main thread only."""
import re
import uuid

from . import compat

_COPY_NAME = re.compile(r"\.\d{3,}$")


def _sharing(scene, uid):
    return [s for s in compat.all_strips(scene.sequence_editor) if s.get(compat.UID_KEY) == uid]


def _owner(scene, uid, strips):
    """Which of `strips` (all carrying `uid`, at least one) owns it."""
    if len(strips) == 1:
        return strips[0]
    record = scene.vidprior.strip_owners.get(uid)
    named = [s for s in strips if record is not None and s.name == record.strip_name]
    if named:
        return named[0]
    originals = [s for s in strips if not _COPY_NAME.search(s.name)]
    return min(originals or strips, key=lambda s: (len(s.name), s.name))


def uid_of(scene, strip):
    """The strip's id when it owns it, else None (a copy not settled yet): read only, safe in draw()."""
    uid = strip.get(compat.UID_KEY) if strip is not None else None
    if not uid or scene is None:
        return None
    return uid if _owner(scene, uid, _sharing(scene, uid)).name == strip.name else None


def settle(scene):
    """Gives every copy that carries another strip's id a fresh id of its own and records who owns each id.
    Returns the names of the strips that got a new id."""
    if scene is None or scene.sequence_editor is None:
        return []
    groups = {}
    for strip in compat.all_strips(scene.sequence_editor):
        uid = strip.get(compat.UID_KEY)
        if uid:
            groups.setdefault(uid, []).append(strip)
    owners = {}
    renewed = []
    for uid, strips in groups.items():
        owner = _owner(scene, uid, strips)
        owners[uid] = owner.name
        for strip in strips:
            if strip.name != owner.name:
                fresh = strip[compat.UID_KEY] = uuid.uuid4().hex
                owners[fresh] = strip.name
                renewed.append(strip.name)
    records = scene.vidprior.strip_owners
    if {r.name: r.strip_name for r in records} != owners:
        records.clear()
        for uid, name in sorted(owners.items()):
            item = records.add()
            item.name, item.strip_name = uid, name
    return renewed
