"""A recording, fault-injecting HTTP proxy between goesfs and the local S3.

goesfs talks to this proxy as if it were S3. Every request is logged (method,
path, query, Range, status, body bytes sent) so tests can assert exactly which
ranges were fetched, and faults can be armed per request (error status, a body
cut short, a delay) to exercise retries and error reporting.

Every accessor of the log first waits until the proxy is idle (`wait_idle`): nothing in
flight and nothing started or finished for a quiet period, so background readahead or
prefetch of goesfs cannot be caught half-way (a record without its status). Pass
`wait=False` only to watch requests while they run.

Stdlib only. Keep-alive towards goesfs (HTTP/1.1, Content-Length always set);
towards moto one connection per request, since moto closes after every response.
"""

from __future__ import annotations

import dataclasses
import http.client
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 64 * 1024
QUIET = 0.5  # seconds without any request starting or ending that count as idle
IDLE_TIMEOUT = 60.0  # how long wait_idle waits for that before failing the test
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "te", "trailers", "transfer-encoding", "upgrade", "host"}
S3_ERROR_CODES = {400: "BadRequest", 403: "AccessDenied", 404: "NoSuchKey",
                  416: "InvalidRange", 500: "InternalError", 503: "SlowDown"}


@dataclass(frozen=True)
class Request:
    """What a fault matcher sees."""
    method: str
    path: str  # URL-decoded, without the query: "/bucket/key"
    query: str
    range: str | None

    @property
    def is_listing(self) -> bool:
        return "list-type" in parse_qs(self.query)


@dataclass
class Record:
    """One request as the proxy handled it."""
    method: str
    path: str
    query: str
    range: str | None
    status: int | None = None
    bytes_sent: int = 0  # response body bytes
    fault: str | None = None
    done: bool = False

    @property
    def is_listing(self) -> bool:
        return "list-type" in parse_qs(self.query)


# --- faults ----------------------------------------------------------------

@dataclass(frozen=True)
class Respond:
    """Answer with this status and an S3-style error body, without asking upstream."""
    status: int
    code: str | None = None


@dataclass(frozen=True)
class DropAfter:
    """Forward the response but close the connection after `nbytes` of body."""
    nbytes: int


@dataclass(frozen=True)
class Delay:
    """Wait before forwarding (to provoke timeouts)."""
    seconds: float


@dataclass(frozen=True)
class Reset:
    """Send a TCP RST (SO_LINGER 0) after `nbytes` of body; None = before any response."""
    nbytes: int | None = None


@dataclass(frozen=True)
class Stall:
    """Send the headers and `nbytes` of body, then hang until `Proxy.release_stalls()`
    (or `clear_faults()`), `seconds` pass or the client hangs up, then close: a
    dead-but-open connection."""
    nbytes: int = 0
    seconds: float = 60.0


@dataclass(frozen=True)
class Throttle:
    """Forward the body at most `bytes_per_second`."""
    bytes_per_second: float


Action = Union[Respond, DropAfter, Delay, Reset, Stall, Throttle]
Matcher = Union[str, Callable[[Request], bool]]


@dataclass
class Fault:
    match: Callable[[Request], bool]
    action: Action
    remaining: int | None  # None: every matching request
    every: int = 1  # act on every Nth matching request only (the others pass untouched)
    seen: int = 0


def _matcher(match: Matcher, method: str | None) -> Callable[[Request], bool]:
    test = (lambda r: match in r.path) if isinstance(match, str) else match
    return lambda r: (method is None or r.method == method) and test(r)


# --- the proxy -------------------------------------------------------------

class Proxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a request starts or ends
        self._in_flight = 0  # requests being handled (including ones reset() dropped from the log)
        self._last_activity = time.monotonic()  # when one last started or ended
        self._records: list[Record] = []
        self._faults: list[Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0  # 0 until first started; then kept, so go_down/come_up reuse it
        self._release = threading.Event()  # set to let stalled responses go
        self._connections: set[socket.socket] = set()  # live client connections

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Proxy":
        handler = type("BoundHandler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._port = self._server.server_address[1]
        self._server.daemon_threads = True  # idle keep-alive connections must not block stop()
        self._thread = threading.Thread(target=self._server.serve_forever, name="proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- whole-server outages --

    def go_down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection,
        so a client cannot keep using a kept-alive one: the server is gone."""
        self.stop()
        self._release.set()  # stalled handlers must not outlive the outage
        with self._lock:
            live = list(self._connections)
        for sock in live:
            # shutdown, not close: it wakes the handler thread blocked on this socket,
            # which then closes it itself.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def come_up(self) -> None:
        """Listen again on the same port."""
        self._release = threading.Event()
        self.start()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- log --

    def wait_idle(self, quiet: float = QUIET, timeout: float = IDLE_TIMEOUT) -> None:
        """Block until no request is in flight and none started or ended for `quiet`
        seconds (by the proxy's own clock), or fail after `timeout` seconds."""
        with self._idle:
            self._wait_idle_locked(quiet, timeout)

    def _wait_idle_locked(self, quiet: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            quiet_left = self._last_activity + quiet - now
            if self._in_flight == 0 and quiet_left <= 0:
                return
            if now >= deadline:
                running = [(r.method, r.path, r.range, r.fault) for r in self._records if not r.done]
                raise AssertionError(f"proxy not idle after {timeout}s: {self._in_flight} request(s) "
                                     f"in flight {running}")
            # Woken when a request starts or ends, else when the quiet period would be over.
            left = deadline - now
            self._idle.wait(min(left, quiet_left) if self._in_flight == 0 else left)

    def records(self, wait: bool = True) -> list[Record]:
        """A copy of the log. With `wait` (the default) taken once the proxy is idle, in
        the same step, so every record is complete (`done`, its status final)."""
        with self._idle:
            if wait:
                self._wait_idle_locked(QUIET, IDLE_TIMEOUT)
            return [dataclasses.replace(r) for r in self._records]

    def object_gets(self, path: str | None = None, wait: bool = True) -> list[Record]:
        """GETs of object data (not listings), optionally only for "/bucket/key"."""
        return [r for r in self.records(wait) if r.method == "GET" and not r.is_listing
                and (path is None or r.path == path)]

    def reset(self, wait: bool = True) -> None:
        """Empty the log. With `wait` (the default) once the proxy is idle, so nothing
        still running from before can start a request that lands in the new log."""
        with self._idle:
            if wait:
                self._wait_idle_locked(QUIET, IDLE_TIMEOUT)
            self._records.clear()

    # -- faults --

    def add_fault(self, match: Matcher, action: Action, times: int | None = 1,
                  method: str | None = "GET", every: int = 1) -> Fault:
        """Arm `action` for the next `times` requests matching (None = forever).

        `match` is a substring of the decoded path or a predicate on `Request`.
        With `every=N` only every Nth matching request gets it (`times` counts those)."""
        fault = Fault(_matcher(match, method), action, times, every)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.release_stalls()

    def release_stalls(self) -> None:
        """Let every stalled response finish (it closes its connection)."""
        old, self._release = self._release, threading.Event()
        old.set()

    def _started(self) -> None:
        with self._idle:
            self._in_flight += 1
            self._last_activity = time.monotonic()
            self._idle.notify_all()

    def _ended(self, record: Record | None) -> None:
        with self._idle:
            if record is not None:
                record.done = True
            self._in_flight -= 1
            self._last_activity = time.monotonic()
            self._idle.notify_all()

    def _begin(self, request: Request) -> tuple[Record, Action | None]:
        """Log the request and consume the first armed fault that matches it."""
        with self._lock:
            record = Record(request.method, request.path, request.query, request.range)
            self._records.append(record)
            for fault in self._faults:
                if fault.remaining != 0 and fault.match(request):
                    fault.seen += 1
                    if fault.seen % fault.every:
                        continue
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    record.fault = type(fault.action).__name__
                    return record, fault.action
        return record, None

    def _update(self, record: Record, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the client
    timeout = 120  # close idle client connections eventually
    proxy: Proxy

    def log_message(self, *args) -> None:
        pass  # the Record log is the log

    def setup(self) -> None:
        super().setup()
        with self.proxy._lock:  # go_down() must be able to cut it
            self.proxy._connections.add(self.connection)

    def finish(self) -> None:
        with self.proxy._lock:
            self.proxy._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # already reset or cut

    def do_GET(self) -> None:
        # In flight from here until the handler is finished with it, however it ends.
        self.proxy._started()
        self._record: Record | None = None
        try:
            self._forward()
        finally:
            self.proxy._ended(self._record)

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _forward(self) -> None:
        url = urlsplit(self.path)
        request = Request(self.command, unquote(url.path), url.query, self.headers.get("Range"))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        record, action = self.proxy._begin(request)
        self._record = record

        if isinstance(action, Delay):
            time.sleep(action.seconds)
        if isinstance(action, Respond):
            self._send_error(record, action.status, action.code)
            return
        if isinstance(action, Reset) and action.nbytes is None:
            self.proxy._update(record, done=True)  # status None: no response at all
            self._reset()
            return
        try:
            conn = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port,
                                              timeout=60)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{self.proxy.upstream_host}:{self.proxy.upstream_port}")
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.endheaders(body or None)
            upstream = conn.getresponse()
        except OSError as error:
            self._send_error(record, 502, "BadGateway", str(error))
            return
        try:
            limit = action.nbytes if isinstance(action, (DropAfter, Reset, Stall)) else None
            self._relay(record, upstream, limit, action)
        finally:
            conn.close()

    def _reset(self) -> None:
        # The client sees "connection reset by peer".
        self.close_connection = True
        _abort(self.connection)

    def _relay(self, record: Record, upstream: http.client.HTTPResponse, limit: int | None,
               action: Action | None = None) -> None:
        has_body = self.command != "HEAD" and upstream.status not in (204, 304)
        length = upstream.getheader("Content-Length")
        buffered = None
        if has_body and length is None:  # chunked upstream: buffer so we can send a length
            buffered = upstream.read()
            length = str(len(buffered))

        # Status before any byte goes out, bytes counted before they are sent:
        # a test that has read the data therefore always sees the full record.
        self.proxy._update(record, status=upstream.status)
        self.send_response_only(upstream.status, upstream.reason)
        for name, value in upstream.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if not has_body:
            self.proxy._update(record, done=True)
            return

        remaining = int(length) if limit is None else min(limit, int(length))
        rate = action.bytes_per_second if isinstance(action, Throttle) else None
        step = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 20)))  # ~20 writes/s
        began = time.monotonic()
        sent = 0
        try:
            while remaining > 0:
                if rate is not None:  # pace: never ahead of rate × elapsed
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                chunk = buffered[sent:sent + step] if buffered is not None else upstream.read(min(step, remaining))
                chunk = chunk[:remaining]
                if not chunk:
                    break
                self.proxy._update(record, bytes_sent=sent + len(chunk))
                self.wfile.write(chunk)
                sent += len(chunk)
                remaining -= len(chunk)
        except OSError:
            self.proxy._update(record, bytes_sent=sent)  # the client went away
            self.close_connection = True
            return
        if isinstance(action, Stall) and sent < int(length):
            self.wfile.flush()
            self._hang(action.seconds)  # with the connection open
            self._drop_connection()
        elif isinstance(action, Reset) and sent < int(length):
            self._reset()
        elif limit is not None and sent < int(length):
            self._drop_connection()
        self.proxy._update(record, done=True)

    def _send_error(self, record: Record, status: int, code: str | None, message: str = "") -> None:
        code = code or S3_ERROR_CODES.get(status, "InjectedFault")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message or 'injected by the test proxy'}</Message></Error>").encode()
        sends_body = self.command != "HEAD"
        self.proxy._update(record, status=status, bytes_sent=len(body) if sends_body else 0)
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if sends_body:
            self.wfile.write(body)
        self.proxy._update(record, done=True)

    def _hang(self, seconds: float) -> None:
        """Until the stalls are released, `seconds` pass or the client hangs up (a client
        that gave up on the stall closes its end: the request is over for it, and for us)."""
        release, deadline = self.proxy._release, time.monotonic() + seconds
        while not release.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return  # EOF: the client closed the connection
            except (OSError, ValueError):
                return  # reset or already closed

    def _drop_connection(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST instead of an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
