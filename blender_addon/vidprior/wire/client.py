"""The vidprior protocol (protocol/PROTOCOL.md, version 1) over the stdlib websocket and MessagePack.

A Client is used by one thread at a time (the add-on's worker thread). It correlates replies with requests by
`id`; job events (progress, frame, done, error with `job`) that arrive while waiting for a reply are kept and
returned by `next_event`.
"""
import collections
import hashlib
import socket

from . import msgpack
from .websocket import ConnectionClosed, WebSocketError, connect

PROTOCOL_VERSION = 1
CLIENT_NAME = "blender-addon/0.1"


class DaemonError(Exception):
    """An `error` message from the daemon, or a failure to reach it. `code` is the protocol's stable code."""

    def __init__(self, code, message, details=None, job=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.details = details or {}
        self.job = job


def _is_job_event(msg):
    kind = msg.get("type")
    return kind in ("progress", "frame", "done") or (kind == "error" and msg.get("job") and msg.get("id") is None)


class Client:
    def __init__(self, host="127.0.0.1", port=8765, token="", timeout=10.0):
        self.host, self.port, self.token, self.timeout = host, int(port), token, timeout
        self.ws = None
        self.welcome = None
        self._next_id = 1
        self._events = collections.deque()

    # -- connection ------------------------------------------------------------------------------------
    def open(self):
        try:
            self.ws = connect(self.host, self.port, timeout=self.timeout)
        except (WebSocketError, OSError) as err:
            raise DaemonError("E_CONNECTION", str(err)) from err
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": CLIENT_NAME}
        if self.token:
            hello["token"] = self.token
        self.welcome = self.request(hello, expect="welcome")
        return self.welcome

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- messages --------------------------------------------------------------------------------------
    def send(self, msg):
        self.ws.send_binary(msgpack.packb(msg))

    def receive(self, timeout):
        """The next message, or None when nothing arrived within `timeout` seconds."""
        try:
            data = self.ws.recv(timeout=timeout)
        except socket.timeout:
            return None
        except ConnectionClosed as err:
            reason = err.reason if err.reason and "closed the connection" not in err.reason else ""
            raise DaemonError("E_CONNECTION", "the daemon closed the connection%s" % (
                ": " + reason if reason else "")) from err
        except (WebSocketError, OSError) as err:
            raise DaemonError("E_CONNECTION", "lost the connection to the daemon: %s" % err) from err
        if isinstance(data, str):
            raise DaemonError("E_PROTOCOL", "the daemon sent a text message")
        msg = msgpack.unpackb(data)
        if not isinstance(msg, dict):
            raise DaemonError("E_PROTOCOL", "the daemon sent a message that is not a map")
        return msg

    def request(self, msg, expect=None, timeout=None):
        """Sends a request and waits for its reply; job events that arrive meanwhile are queued."""
        msg = dict(msg)
        msg["id"] = self._next_id
        self._next_id += 1
        self.send(msg)
        wait = self.timeout if timeout is None else timeout
        while True:
            reply = self.receive(wait)
            if reply is None:
                raise DaemonError("E_CONNECTION", "the daemon did not answer %s within %.0f s" % (msg["type"], wait))
            if reply.get("id") == msg["id"]:
                if reply.get("type") == "error":
                    raise DaemonError(reply.get("code", "E_INTERNAL"), reply.get("message", ""), reply.get("details"))
                if expect and reply.get("type") != expect:
                    raise DaemonError("E_PROTOCOL", "expected %s, got %s" % (expect, reply.get("type")))
                return reply
            if _is_job_event(reply):
                self._events.append(reply)

    def next_event(self, timeout):
        """The next job event (progress/frame/done/error), or None after `timeout` seconds."""
        if self._events:
            return self._events.popleft()
        while True:
            msg = self.receive(timeout)
            if msg is None or _is_job_event(msg):
                return msg

    # -- requests --------------------------------------------------------------------------------------
    def submit(self, kind, params, frames, edits=None, name=None, output_dir=None):
        """frames: list of {"name", "png" bytes} or {"name", "path"}. Returns the JobSummary."""
        msg = {"type": "submit", "kind": kind, "params": params, "frames": frames}
        if edits:
            msg["edits"] = edits
        if name:
            msg["name"] = name
        if output_dir:
            msg["output_dir"] = output_dir
        return self.request(msg, expect="accepted", timeout=max(self.timeout, 120.0))["job"]

    def cancel(self, job_id):
        return self.request({"type": "cancel", "job": job_id}, expect="ok")

    def attach(self, job_id, from_index=0):
        return self.request({"type": "attach", "job": job_id, "from_index": from_index}, expect="attached")["job"]

    def get_job(self, job_id):
        """The job's detail: its summary plus params (defaults filled in), inputs and outputs."""
        return self.request({"type": "get_job", "job": job_id}, expect="job")["job"]

    def list_models(self):
        return self.request({"type": "list_models"}, expect="models")

    def list_jobs(self, limit=100):
        return self.request({"type": "list_jobs", "limit": limit}, expect="jobs")["jobs"]

    def upload(self, data, name=None, resume=None, on_progress=None):
        """Sends one file (a frame or an edit) as a chunked upload (§4) and returns its id, for
        `FrameInput.upload`. `resume` goes on with an upload begun earlier (after a lost connection) from the
        offset the daemon reports. `on_progress(state)` is called with every `upload` reply (the first one
        carries the id to resume with); it may raise to stop between chunks."""
        if resume:
            state = self.upload_status(resume)
            if state["bytes"] != len(data):
                raise DaemonError("E_BAD_REQUEST", "upload %s was begun for %d bytes, not %d: begin a new one" % (
                    resume, state["bytes"], len(data)), {"upload": resume})
        else:
            begin = {"type": "upload_begin", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            if name:
                begin["name"] = str(name)[:255]
            state = self.request(begin, expect="upload")
        view = memoryview(data)
        while True:
            if on_progress is not None:
                on_progress(state)
            if state.get("complete") or state["received"] >= state["bytes"]:
                break
            end = min(state["bytes"], state["received"] + state["chunk_bytes"])
            state = self.request({"type": "upload_chunk", "upload": state["upload"], "offset": state["received"],
                                  "data": bytes(view[state["received"]:end])}, expect="upload")
        if not state.get("complete"):
            state = self.request({"type": "upload_end", "upload": state["upload"]}, expect="upload")
        return state["upload"]

    def upload_status(self, upload_id):
        """Where an upload stands: `received` is the next chunk's offset."""
        return self.request({"type": "upload_status", "upload": upload_id}, expect="upload")
