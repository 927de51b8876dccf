"""The draw-a-digit page: a standard-library HTTP server, one HTML page, one JSON endpoint.

``GET /`` serves a self-contained page (inline JS and CSS, nothing from the network, so it works
offline); ``POST /predict`` takes the drawing as PNG bytes (``Content-Type: image/png``), a PNG
data URL, or JSON ``{"image": "data:image/png;base64,..."}``, preprocesses it with the same
function as `mnistlab predict`, and answers JSON ``{digit, prob, top3, probs, image28}``
(``image28``: the 784 pixels the model saw, row by row, 0..255).

Each connection has a thread; decoding and preprocessing run in worker processes (one per core
by default): that work is 1-2 ms of Python, numpy and Pillow per drawing, holding the GIL, so
in threads one core did it for every request. The model call (well under 1 ms) runs in the
request's thread, one at a time. `lab/serve/load_serve.py` measures it; docs/inference.md has the
figures.

Bad requests get a JSON ``{"error": ...}`` with 400 (malformed, empty drawing), 411 (no
length), 413 (body over the limit) or 404; a bug in one request is a 500 for that request,
never the end of the server. Binds 127.0.0.1 unless told otherwise: it is a local demo, not a
hardened public service.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import numpy as np
from torch import nn

from mnistlab.inference.predict import predict
from mnistlab.inference.preprocess import ImageError, preprocess_image

__all__ = ["MAX_BODY", "MAX_PIXELS", "make_server", "page"]

#: A 280x280 canvas PNG is 5-20 KB; 2 MB leaves room for big screens and data URLs.
MAX_BODY = 2 * 1024 * 1024
#: Tighter than the command line's limit: a server decodes what strangers send.
MAX_PIXELS = 4_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: An oversize body up to this size is read and dropped so the client gets its 413.
DISCARD_LIMIT = 16 * 1024 * 1024


def page(model_label: str) -> bytes:
    template = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    return template.replace("__MODEL__", html.escape(model_label)).encode("utf-8")


def _preprocess(image: bytes) -> np.ndarray:
    return preprocess_image(image, label="drawing", max_pixels=MAX_PIXELS)


def _start_worker(server_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the server stops its workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()


def _exit_with_server(server_pid: int) -> None:
    # a forked worker holds both ends of the pool's pipes, so a server that is killed (not
    # stopped) would leave it waiting for work forever
    while os.getppid() == server_pid:
        time.sleep(1.0)
    os._exit(0)


class _Preprocessing:
    """`preprocess_image` on request bodies, in `workers` processes (0: in the calling thread).

    A worker that dies (killed, or crashed by a hostile image) fails the requests it had taken;
    the next request after that gets a fresh pool.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._start() if workers else None

    def _start(self) -> ProcessPoolExecutor:
        # Forked, where the system can: at once, sharing the loaded libraries' memory. Spawned
        # workers would re-import the `mnistlab` script and PyTorch with it: ~1.5 s and ~275 MB
        # each. The first pool is forked before the server has started any thread; workers run
        # only numpy and Pillow code.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        # start the workers now rather than on the first requests
        wait([pool.submit(int) for _ in range(self.workers)])
        return pool

    def __call__(self, image: bytes) -> np.ndarray:
        pool = self._pool
        if pool is None:
            return _preprocess(image)
        try:
            return pool.submit(_preprocess, image).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    pool.shutdown(wait=False)
                    self._pool = self._start()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def decode_body(body: bytes, content_type: str) -> bytes:
    """The image bytes inside a request body (raw image, data URL, or JSON with a data URL)."""
    if not body:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "empty body: send a PNG of the drawing")
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("image/") or body.startswith(PNG_MAGIC):
        return body
    text: Any = body.decode("utf-8", errors="replace").strip()
    if kind == "application/json" or text.startswith("{"):
        try:
            text = json.loads(text)
        except json.JSONDecodeError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed JSON body") from None
        if not isinstance(text, dict) or not isinstance(text.get("image"), str):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, 'JSON body needs {"image": "data:..."}')
        text = text["image"]
    if not text.startswith("data:") or ";base64," not in text:
        raise _BadRequest(
            HTTPStatus.BAD_REQUEST,
            "expected PNG bytes (Content-Type: image/png) or a base64 data URL",
        )
    try:
        return base64.b64decode(text.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "data URL is not valid base64") from None


def _too_large(length: int) -> _BadRequest:
    return _BadRequest(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"body of {length:,} bytes is over the {MAX_BODY:,}-byte limit",
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "mnistlab"
    protocol_version = "HTTP/1.1"
    # headers and body go out as two writes; with Nagle's algorithm the body waited for the
    # client's delayed ACK of the headers (up to 40 ms) on a kept-alive connection
    disable_nagle_algorithm = True
    # a client that stops sending mid-request frees its thread after this many seconds
    timeout = 10

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/health":
            self._json(HTTPStatus.OK, {"ok": True, "model": self.server.label})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        try:
            if self.path.split("?", 1)[0] != "/predict":
                raise _BadRequest(HTTPStatus.NOT_FOUND, "POST to /predict")
            image = decode_body(self._read_body(), self.headers.get("Content-Type", ""))
            pixels = self.server.preprocess(image)
            with self.server.lock:
                # one forward pass at a time: the model is tiny, and a pass is cheapest alone
                result = predict(self.server.model, pixels)[0]
            self._json(HTTPStatus.OK, {**result.as_dict(), "image28": pixels.reshape(-1).tolist()})
        except _BadRequest as error:
            self._json(error.status, {"error": str(error)})
        except ImageError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except Exception as error:  # noqa: BLE001 - one bad request must not stop the server
            self.log_error("internal error on %s: %r", self.path, error)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or not length_header:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if length > MAX_BODY:
            self.close_connection = True
            if length <= DISCARD_LIMIT:
                # read and drop it: closing a socket with unread data resets the connection,
                # and the client would see "connection reset" instead of this 413
                self._discard(length)
            raise _too_large(length)
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                return
            length -= len(chunk)

    def handle_expect_100(self) -> bool:
        # curl asks before sending a large body: refuse an oversize one before it is sent
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            self.close_connection = True
            error = _too_large(int(length))
            self._json(error.status, {"error": str(error)})
            return False
        return super().handle_expect_100()

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # the page needs nothing from elsewhere; say so, so a browser blocks any attempt
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' data: blob:",
        )
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        # errors are always worth a line, even when access logging is off
        sys.stderr.write(f"mnistlab serve: {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for an idle keep-alive connection
    # connections waiting to be accepted; socketserver's 5 made some of a burst of clients
    # wait for their SYN to be resent (1 s, then 3 s)
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        model: nn.Module,
        label: str,
        verbose: bool,
        workers: int,
    ) -> None:
        self.model = model.cpu().eval()
        self.label = label
        self.page = page(label)
        self.verbose = verbose
        self.lock = threading.Lock()
        # before binding: a failed bind calls server_close, which stops the workers
        self.preprocess = _Preprocessing(workers)
        super().__init__(address, _Handler)

    def server_close(self) -> None:
        super().server_close()
        self.preprocess.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback; a client that hangs up is not news, and
        # anything else deserves one line, not a stack
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            sys.stderr.write(f"mnistlab serve: error with {client_address[0]}: {error!r}\n")


def make_server(
    model: nn.Module,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    label: str = "model",
    verbose: bool = False,
    workers: int | None = None,
) -> ThreadingHTTPServer:
    """A bound, not yet serving server (``port=0`` picks a free port: see ``server_address``).

    `workers`: processes that decode and preprocess images (default: one per CPU core; 0: in
    the request threads). Call ``server_close()`` to stop them.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    return _Server((host, port), model, label, verbose, workers)
