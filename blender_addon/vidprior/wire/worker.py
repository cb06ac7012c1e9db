"""Background threads that own the daemon connection. They never touch bpy: they read input files, write
output files and post events to a queue that the main thread drains (a timer in the UI, a loop in `-b`).

Events posted (tuples):
  ("connected", welcome)                      the handshake succeeded
  ("accepted", job_summary)                   the job is queued
  ("progress", progress_message)             the daemon's, or the worker's own {"stage": "uploading frames i/n",
                                              "upload": True} while it uploads them to a remote daemon
  ("frame", index, name, path, seed)          an output frame was written to `path`
  ("done", done_message)
  ("error", code, message)                    terminal: the task failed (or E_CANCELLED)
  ("result", value)                           terminal for `call` tasks
"""
import os
import queue
import threading

from .client import Client, DaemonError


class Task(threading.Thread):
    def __init__(self, settings):
        super().__init__(daemon=True, name="vidprior-" + type(self).__name__)
        self.settings = settings  # {"host", "port", "token", "timeout"}
        self.events = queue.Queue()
        self.finished = threading.Event()
        self._cancel = threading.Event()

    def cancel(self):
        self._cancel.set()

    @property
    def cancel_requested(self):
        return self._cancel.is_set()

    def post(self, *event):
        self.events.put(event)

    def client(self):
        s = self.settings
        return Client(s.get("host", "127.0.0.1"), s.get("port", 8765), s.get("token", ""), s.get("timeout", 10.0))

    def run(self):
        try:
            self.work()
        except DaemonError as err:
            self.post("error", err.code, err.message)
        except Exception as err:  # the worker must always end with a terminal event
            self.post("error", "E_INTERNAL", "%s: %s" % (type(err).__name__, err))
        finally:
            self.finished.set()

    def work(self):
        raise TypeError("a Task subclass defines work()")

    def drain(self):
        """All events posted so far (main thread)."""
        items = []
        while True:
            try:
                items.append(self.events.get_nowait())
            except queue.Empty:
                return items


class CallTask(Task):
    """One request/reply exchange, e.g. the preferences' "test connection" (welcome + list_models)."""

    def __init__(self, settings, what="info"):
        super().__init__(settings)
        self.what = what

    def work(self):
        with self.client() as c:
            self.post("connected", c.welcome)
            if self.what == "info":
                self.post("result", {"welcome": c.welcome, "models": c.list_models()})
            else:
                raise DaemonError("E_BAD_REQUEST", "unknown call %r" % self.what)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _path_refused(err):
    """A submit refused because of a path (not allowed, or not on this daemon's file system)."""
    field = str((err.details or {}).get("field", ""))
    return err.code == "E_FORBIDDEN_PATH" or field.endswith("path") or field == "output_dir"


class FollowingTask(Task):
    """Follows one job's events to its end, writing every output frame into `output_dir`."""

    def __init__(self, settings, output_dir):
        super().__init__(settings)
        self.output_dir = output_dir
        self.job_id = None
        self.daemon_writes = False  # the daemon writes outputs into output_dir itself (loopback)
        self.seed_base = None       # edit-keyframe after attach: replayed frames carry no seed (candidate i: base + i)

    def follow(self, c):
        cancel_sent = False
        while True:
            if self.cancel_requested and not cancel_sent:
                c.cancel(self.job_id)
                cancel_sent = True
            event = c.next_event(timeout=0.25)
            if event is None:
                continue
            kind = event.get("type")
            if kind == "progress":
                self.post("progress", event)
            elif kind == "frame":
                name = os.path.basename(event.get("name") or "frame-%05d.png" % event["index"])
                path = os.path.join(self.output_dir, name)
                if event.get("png") is not None and not (self.daemon_writes and os.path.isfile(path)):
                    tmp = path + ".part"
                    with open(tmp, "wb") as f:
                        f.write(event["png"])
                    os.replace(tmp, path)
                seed = event.get("seed")
                if seed is None and self.seed_base is not None:
                    seed = self.seed_base + int(event["index"])
                self.post("frame", event["index"], name, path, seed)
            elif kind == "done":
                self.post("done", event)
                return
            elif kind == "error":
                self.post("error", event.get("code", "E_INTERNAL"), event.get("message", ""))
                return


# What a submit carries besides the frames' bytes (params, framing), as the CLI counts it (submit-frames.ts).
MESSAGE_OVERHEAD = 64 * 1024
PER_FRAME_OVERHEAD = 512
# A connection lost while uploading is opened again this many times (after 0.5, 1, 2 s), going on from where
# the daemon says the upload is.
UPLOAD_RECONNECTS = 3


def send_mode(files, welcome):
    """"bytes" when all the files fit in one submit under the daemon's message limit, else "upload" (chunked,
    §4); a daemon without the `upload` capability cannot take them (E_TOO_LARGE, as the CLI says it)."""
    total = MESSAGE_OVERHEAD + sum(os.path.getsize(path) + PER_FRAME_OVERHEAD for path in files)
    limit = int((welcome.get("limits") or {}).get("max_message_bytes") or 0)
    if not limit or total <= limit:
        return "bytes"
    if "upload" not in welcome.get("capabilities", []):
        raise DaemonError("E_TOO_LARGE", "the frames (%d bytes) do not fit in one message (the daemon takes %d) "
                                         "and this daemon takes no uploads: use a shorter strip" % (total, limit),
                          {"bytes": total, "limit": limit})
    return "upload"


class JobTask(FollowingTask):
    """Submits one job and follows it. On the same machine (a loopback daemon offering `paths`/`output_dir`)
    frames go as paths and the daemon writes the outputs into `output_dir`: no frame bytes on the socket. A
    daemon that cannot read those paths (another machine, a chroot, not in its --allow-dir) gets the bytes:
    in the submit when they fit in one message, else as chunked uploads (resumed after a lost connection)."""

    def __init__(self, settings, kind, params, frame_files, output_dir, edits=None, name=None):
        super().__init__(settings, output_dir)
        self.kind = kind
        self.params = params
        self.frame_files = frame_files  # [(name, path)]
        self.edits = edits or []        # [(frame_index, path)]
        self.name = name
        self.transport = None           # "paths", "bytes" or "upload", once submitted
        self.reconnects = 0             # connections opened again while uploading
        self._conn = None

    def _by_path(self):
        frames = [{"name": name, "path": os.path.abspath(path)} for name, path in self.frame_files]
        edits = [{"frame": int(index), "path": os.path.abspath(path)} for index, path in self.edits]
        return frames, edits

    def _check_cancel(self, what):
        if self.cancel_requested:
            raise DaemonError("E_CANCELLED", "cancelled %s" % what)

    def _by_bytes(self):
        frames = []
        for name, path in self.frame_files:
            with open(path, "rb") as f:
                frames.append({"name": name, "png": f.read()})
            self._check_cancel("before the job was sent")
        edits = []
        for index, path in self.edits:
            with open(path, "rb") as f:
                edits.append({"frame": int(index), "png": f.read()})
        return frames, edits

    def _by_upload(self):
        """Every frame and edit as a chunked upload, one after the other, with progress; cancel is honoured
        between chunks."""
        files = [(name, path) for name, path in self.frame_files] + [
            ("edit-%d%s" % (int(index), os.path.splitext(path)[1]), path) for index, path in self.edits]
        ids = []
        for i, (name, path) in enumerate(files):
            self.post("progress", {"type": "progress", "stage": "uploading frames %d/%d" % (i + 1, len(files)),
                                   "fraction": 0.0, "upload": True})
            with open(path, "rb") as f:
                data = f.read()
            ids.append(self._upload_one(name, data))
        frames = [{"name": name, "upload": uid} for (name, _), uid in zip(self.frame_files, ids)]
        edits = [{"frame": int(index), "upload": uid}
                 for (index, _), uid in zip(self.edits, ids[len(self.frame_files):])]
        return frames, edits

    def _upload_one(self, name, data):
        begun = {}

        def on_progress(state):
            begun["id"] = state["upload"]
            self._check_cancel("while uploading frames")

        tries = 0
        while True:
            try:
                if tries:
                    self._reconnect(tries)
                return self._conn.upload(data, name=name, resume=begun.get("id"), on_progress=on_progress)
            except DaemonError as err:
                # A lost connection, or a daemon not back yet: try again, a bounded number of times.
                if err.code != "E_CONNECTION" or tries >= UPLOAD_RECONNECTS:
                    raise
                tries += 1

    def _reconnect(self, tries):
        """Opens the connection again after a lost one (the upload goes on from the daemon's offset)."""
        self._conn.close()
        if self._cancel.wait(0.5 * 2 ** (tries - 1)):
            raise DaemonError("E_CANCELLED", "cancelled while uploading frames")
        conn = self.client()
        try:
            conn.open()
        except DaemonError:
            conn.close()
            raise
        self._conn = conn
        self.reconnects += 1

    def work(self):
        os.makedirs(self.output_dir, exist_ok=True)
        with self.client() as first:
            self._conn = first
            try:
                self._submit_and_follow(first)
            finally:
                if self._conn is not first:
                    self._conn.close()

    def _submit_and_follow(self, c):
        self.post("connected", c.welcome)
        capabilities = set(c.welcome.get("capabilities", []))
        job = None
        if self.settings.get("host", "127.0.0.1") in LOOPBACK_HOSTS and "paths" in capabilities:
            frames, edits = self._by_path()
            output_dir = os.path.abspath(self.output_dir) if "output_dir" in capabilities else None
            for out in (output_dir, None) if output_dir else (None,):
                try:
                    job = c.submit(self.kind, self.params, frames, edits=edits, name=self.name, output_dir=out)
                    self.transport, self.daemon_writes = "paths", out is not None
                    break
                except DaemonError as err:
                    if not _path_refused(err):
                        raise
                    if (err.details or {}).get("field") != "output_dir":
                        break  # the frames themselves cannot go by path
        if job is None:
            self.transport = send_mode([p for _, p in self.frame_files] + [p for _, p in self.edits], c.welcome)
            frames, edits = self._by_upload() if self.transport == "upload" else self._by_bytes()
            self._check_cancel("before the job was sent")
            job = self._conn.submit(self.kind, self.params, frames, edits=edits, name=self.name)
        self.job_id = job["id"]
        self.post("accepted", job)
        self.follow(self._conn)


class AttachTask(FollowingTask):
    """Re-attaches to a job by its id (after a Blender or daemon restart): replays its finished frames into
    `output_dir`, then follows it live to its end."""

    def __init__(self, settings, job_id, output_dir):
        super().__init__(settings, output_dir)
        self.job_id = job_id

    def work(self):
        os.makedirs(self.output_dir, exist_ok=True)
        with self.client() as c:
            self.post("connected", c.welcome)
            job = c.attach(self.job_id)
            if job.get("kind") == "edit-keyframe":  # candidates are seeds seed, seed+1, … (§6)
                self.seed_base = int(c.get_job(self.job_id)["params"].get("seed", 0))
            self.post("accepted", job)
            self.follow(c)
