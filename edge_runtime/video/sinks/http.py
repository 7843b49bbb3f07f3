"""``http://HOST:PORT``: an MJPEG preview server with a page and live stats.

Serves ``/`` (a page showing the stream and the numbers), ``/stream.mjpg`` (multipart JPEG, the format every
browser shows in an ``<img>``), ``/frame.jpg`` (the latest frame) and ``/stats.json`` (FPS, per-stage latency,
model, backend). Binds 127.0.0.1 unless the URI names another address: the preview has no authentication.
``http://[::1]:8080`` serves IPv6 loopback. Frames are JPEG-encoded only when someone is watching, once per
frame whatever the number of viewers.

Each connection has a thread, so connections are bounded: a client must send its request headers within
:data:`HEADER_TIMEOUT_S` (``?client_timeout=S``; a viewer that stops reading is dropped after as long), and
past :data:`MAX_CLIENTS` (``?max_clients=N``) new connections get ``503`` at once, without a thread.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from deconv_edge_core.errors import UserError

from . import Sink, register_sink

PAGE = Path(__file__).resolve().parent / "preview.html"
#: Largest body a control request may have (``strength=12.5``).
MAX_CONTROL_BYTES = 256
DEFAULT_PORT = 8080
BOUNDARY = "frame"
#: Seconds a client has to send its request (and a viewer to take each frame) before it is dropped.
HEADER_TIMEOUT_S = 10.0
#: Connections served at once; more get 503 without a thread.
MAX_CLIENTS = 16
_BUSY_BODY = b"too many viewers of this preview; try again later\n"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nRetry-After: 5\r\n"
         b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


_QUERY_RULES = "quality must be 1..100, max_clients 1..1000, client_timeout 0.1..3600 (seconds)"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a browser tab left open must not keep the program alive
    sink: MjpegSink
    max_clients = MAX_CLIENTS

    def server_activate(self):
        self._active = 0
        self._active_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request, client_address):
        with self._active_lock:
            full = self._active >= self.max_clients
            if not full:
                self._active += 1
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self):
        with self._active_lock:
            self._active -= 1


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: Socket timeout for reading the request and writing each frame: idle or half-sent connections end.
    timeout = HEADER_TIMEOUT_S

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # one line per request would drown the terminal

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - the stdlib's name
        sink = self.server.sink
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", sink.page_html())
            elif path == "/stats.json":
                self._send(200, "application/json", json.dumps(sink.stats(), default=str).encode())
            elif path == "/frame.jpg":
                _, jpeg = sink.wait_jpeg(after=0, timeout=5.0)
                if jpeg is None:
                    self._send(503, "text/plain", b"no frame yet\n")
                else:
                    self._send(200, "image/jpeg", jpeg)
            elif path == "/stream.mjpg":
                self._stream(sink)
            else:
                self._send(404, "text/plain", b"not found: try / or /stream.mjpg or /stats.json\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
            pass  # the viewer went away, or stopped reading

    def do_POST(self):  # noqa: N802 - the stdlib's name
        """``POST /control`` with ``strength=SIGMA`` (form-encoded): the page's live knobs."""
        sink = self.server.sink
        try:
            if urlsplit(self.path).path != "/control":
                self._send(404, "text/plain", b"not found: POST /control\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_CONTROL_BYTES:
                self._send(413, "text/plain", b"control requests are a few bytes: strength=SIGMA\n")
                return
            fields = dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
            unknown = sorted(set(fields) - set(sink.controls))
            if not fields or unknown:
                valid = ", ".join(sorted(sink.controls)) or "none (this model has no live setting)"
                self._send(400, "text/plain", f"unknown control {', '.join(unknown) or '(none given)'}; "
                                              f"valid: {valid}\n".encode())
                return
            done = {}
            for key, value in fields.items():
                try:
                    done[key] = sink.controls[key](value)
                except UserError as exc:
                    self._send(400, "text/plain", f"{exc}\n".encode())
                    return
            self._send(200, "application/json", json.dumps(done).encode())
        except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
            pass

    def _stream(self, sink: MjpegSink) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        sink.viewers_changed(+1)
        try:
            seq = 0
            while not sink.closing:
                new_seq, jpeg = sink.wait_jpeg(after=seq, timeout=1.0)
                if jpeg is None:
                    continue
                seq = new_seq
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            sink.viewers_changed(-1)


@register_sink("http")
class MjpegSink(Sink):
    """The preview server. ``?quality=80`` sets the JPEG quality."""

    def __init__(self, spec, fps=30.0):
        super().__init__(spec, fps)
        parts = urlsplit(spec.uri)
        try:
            port = parts.port
        except ValueError:
            raise UserError(f"sink '{spec.uri}': bad port") from None
        self.host = parts.hostname or "127.0.0.1"
        self.port = DEFAULT_PORT if port is None else port
        query = dict(parse_qsl(parts.query))
        try:
            self.quality = int(query.get("quality", 80))
            self.max_clients = int(query.get("max_clients", MAX_CLIENTS))
            self.client_timeout_s = float(query.get("client_timeout", HEADER_TIMEOUT_S))
        except ValueError:
            raise UserError(f"sink '{spec.uri}': {_QUERY_RULES}") from None
        if not 1 <= self.quality <= 100 or not 1 <= self.max_clients <= 1000 or \
                not 0.1 <= self.client_timeout_s <= 3600:  # also refuses nan
            raise UserError(f"sink '{spec.uri}': {_QUERY_RULES}")
        self.page = PAGE.read_bytes()
        self.closing = False
        self.url = ""
        self._cond = threading.Condition()
        self._frame: Optional[np.ndarray] = None
        self._seq = 0
        self._jpeg: Optional[tuple] = None  # (seq, bytes) of the last encoded frame
        self._viewers = 0
        self._server: Optional[_Server] = None
        #: Live settings the page may change: name → callable(text value) → the value now in force
        #: (raises UserError for a bad value). Filled by the camera loop (a denoiser's strength).
        self.controls: dict = {}

    def open(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        handler = type("_TimedHandler", (_Handler,), {"timeout": self.client_timeout_s})
        try:
            self._server = server_class((self.host, self.port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {self.port} on {self.host} is in use; pick another, e.g. "
                                f"--sink http://{self.host}:{self.port + 1}") from None
            raise UserError(f"cannot serve the preview on {self.host}:{self.port} ({exc.strerror or exc})") from None
        self._server.sink = self
        self._server.max_clients = self.max_clients
        port = self._server.server_address[1]
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
        self.url = f"http://{shown}:{port}/"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="preview-http",
                         daemon=True).start()
        if self.host not in ("127.0.0.1", "localhost", "::1", "ip6-localhost"):
            print(f"warning: the preview on {self.host}:{port} is reachable from the network, without a password",
                  file=sys.stderr, flush=True)

    def write(self, frame) -> None:
        with self._cond:
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    def wait_jpeg(self, after: int, timeout: float) -> tuple:
        """``(seq, jpeg)`` of a frame newer than ``after``, or ``(after, None)`` after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self.closing, timeout) or self.closing:
                return after, None
            seq, frame, cached = self._seq, self._frame, self._jpeg
        if cached is not None and cached[0] == seq:
            return cached
        # Encode outside the lock: the camera loop never waits for a viewer.
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return after, None
        result = (seq, buf.tobytes())
        with self._cond:
            if self._jpeg is None or self._jpeg[0] < seq:
                self._jpeg = result
        return result

    def page_html(self) -> bytes:
        """The preview page with the current numbers in it (shown before the first stats request returns)."""
        # "</" inside a <script> element would end it early.
        stats = json.dumps(self.stats(), default=str).replace("</", "<\\/")
        return self.page.replace(b"{{STATS_JSON}}", stats.encode())

    def viewers_changed(self, delta: int) -> None:
        with self._cond:
            self._viewers += delta

    def stats(self) -> dict:
        stats = dict(self.stats_provider() if self.stats_provider else {})
        with self._cond:
            stats["viewers"] = self._viewers
        return stats

    def close(self) -> None:
        with self._cond:
            if self.closing:
                return
            self.closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def describe(self) -> str:
        return self.url or self.spec.uri
