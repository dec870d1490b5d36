"""A hostile S3 stand-in: a scriptable, recording ListObjectsV2 + ranged-GET server.

Stdlib only, threaded, HTTP/1.1 with keep-alive, on 127.0.0.1 (a free port).
Path-style S3: `GET /<bucket>?list-type=2&delimiter=%2F&prefix=…` answers a
ListObjectsV2 page; `GET /<bucket>/<key>` with `Range: bytes=a-b` answers 206.

Object content is synthesised, never stored: byte i of (key, version) comes from
SHAKE-256 of (key, version, i // 4096), so a 5 TiB object costs no memory and a
test computes the expected bytes with `content(key, version, start, length)`.

Per test it is scripted with:
- a table of objects (`put`: key, size, etag, LastModified string, content version),
  optionally switching to a new version + ETag after N GETs (`switch_after`), and
  honouring `If-Match` with 412 or ignoring it (`honour_if_match`);
- raw listing overrides for a prefix (`set_listing`: any bytes, or a function of the
  request), raw XML fragments spliced into a generated page (`add_raw_entry`) and
  page sizes (`set_page_size`);
- GET behaviours per key (`on_get`): `WrongRange`, `BadContentRange`, `Redirect`, `Error`, each for the
  next N GETs or forever.
Every request is logged (`records()`), and `wait_idle()` waits, measured by the
server, until no request is in flight and none started for a quiet period.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional, Union
from urllib.parse import quote_from_bytes, unquote_to_bytes

UNIT = 4096
CHUNK = 256 * 1024
BUCKET = "noaa-goes16"
DEFAULT_LAST_MODIFIED = "2023-03-07T14:05:00.000Z"


# --- content -----------------------------------------------------------------

def as_bytes(key: Union[str, bytes]) -> bytes:
    return key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")


def _unit(key: bytes, version: int, index: int) -> bytes:
    return hashlib.shake_256(b"%s\0%d\0%d" % (key, version, index)).digest(UNIT)


def content(key: Union[str, bytes], version: int, start: int, length: int) -> bytes:
    """Bytes [start, start+length) of the object `key` at content `version`."""
    if length <= 0:
        return b""
    key = as_bytes(key)
    first, last = start // UNIT, (start + length - 1) // UNIT
    data = b"".join(_unit(key, version, u) for u in range(first, last + 1))
    skip = start - first * UNIT
    return data[skip:skip + length]


def default_etag(key: Union[str, bytes], version: int) -> str:
    return hashlib.md5(b"%s\0%d" % (as_bytes(key), version)).hexdigest()


# --- the object table ----------------------------------------------------------

@dataclass
class Obj:
    key: bytes
    size: int
    etag: str  # without the quotes
    last_modified: str = DEFAULT_LAST_MODIFIED
    version: int = 1
    # After this many GETs of the key, the object becomes (switch_version, switch_etag):
    # the GET number switch_after+1 and every later one, and listings, see the new object.
    switch_after: Optional[int] = None
    # Or: the first GET starting at or past this offset, and every later one, see the new object.
    switch_from_offset: Optional[int] = None
    switch_version: int = 2
    switch_etag: Optional[str] = None
    honour_if_match: bool = True
    gets: int = 0
    # Listed <Size>, when it should differ from what GETs serve (None: the real size).
    listed_size: Optional[str] = None


# --- GET behaviours ------------------------------------------------------------

@dataclass
class WrongRange:
    """Claim (and send the bytes of) a different range than asked: the whole window
    moved by `start_shift` (asked 0-1048575, start_shift 4096: `bytes 4096-1052671/size`
    with those bytes), then its end moved by `end_shift`, the total by `total_shift`."""
    start_shift: int = 0
    end_shift: int = 0
    total_shift: int = 0
    times: Optional[int] = None  # None: forever
    from_offset: int = 0  # GETs asking for a range starting below this pass untouched


@dataclass
class BadContentRange:
    """Send the bytes asked for, with this Content-Range header instead of the right one:
    a format string over {first}, {last} (asked) and {size}, e.g. "bytes {last}-{first}/{size}"."""
    value: str = "bytes {first}-{last}/99999999999999999999999"
    times: Optional[int] = None


@dataclass
class Redirect:
    """Answer `status` with a Location: "self" (the very request target), "chain"
    (the same path with a new `?hop=N` each time) or a base URL such as
    "http://127.0.0.1:1234" (the request path appended)."""
    status: int = 302
    to: str = "self"
    times: Optional[int] = None


@dataclass
class Error:
    """Answer `status` with an S3 XML error body."""
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    times: Optional[int] = None


Behaviour = Union[WrongRange, BadContentRange, Redirect, Error]


# --- the log -----------------------------------------------------------------

@dataclass
class Record:
    method: str
    target: str  # the raw request target, as sent
    path: bytes  # percent-decoded path, without the query
    query: dict  # name -> decoded value (str, surrogateescape for invalid UTF-8)
    query_raw: str
    headers: dict  # lower-cased name -> value
    started: float
    status: Optional[int] = None
    bytes_sent: int = 0
    behaviour: Optional[str] = None
    finished: Optional[float] = None

    @property
    def is_listing(self) -> bool:
        return "list-type" in self.query

    @property
    def range(self) -> Optional[str]:
        return self.headers.get("range")

    @property
    def if_match(self) -> Optional[str]:
        return self.headers.get("if-match")

    @property
    def key(self) -> Optional[bytes]:
        """The object key of a GET/HEAD of an object (None for listings)."""
        parts = self.path.lstrip(b"/").split(b"/", 1)
        return parts[1] if len(parts) == 2 and not self.is_listing else None

    def __repr__(self) -> str:
        return (f"<{self.method} {self.target} range={self.range} if-match={self.if_match} "
                f"-> {self.status} {self.behaviour or ''} {self.bytes_sent}B>")


def _parse_query(raw: str) -> dict:
    out = {}
    for part in raw.split("&") if raw else []:
        name, _, value = part.partition("=")
        decode = lambda s: unquote_to_bytes(s.replace("+", " ")).decode("utf-8", "surrogateescape")
        out[decode(name)] = decode(value)
    return out


def _xml_escape(data: bytes) -> bytes:
    return data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


def s3_error_body(code: str, message: str, resource: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><Resource>{resource}</Resource>"
            f"<RequestId>ADVERSARY</RequestId></Error>").encode()


ListingBody = Union[bytes, Callable[[dict, int], Union[bytes, tuple]]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    adversary: "Adversary"

    def verify_request(self, request, client_address) -> bool:
        self.adversary._connected(request)
        return True


class Adversary:
    """The hostile server. `with Adversary() as adv:` or `start()`/`stop()`."""

    def __init__(self, bucket: str = BUCKET, name: str = "adversary"):
        self.bucket = bucket
        self.name = name
        self._lock = threading.Condition()
        self._objects: dict[bytes, Obj] = {}
        self._behaviours: dict[bytes, list] = {}
        self._listings: dict[bytes, ListingBody] = {}
        self._listing_calls: dict[bytes, int] = {}
        self._raw_entries: dict[bytes, list[bytes]] = {}
        self._page_sizes: dict[bytes, int] = {}
        self._records: list[Record] = []
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._connections: set[socket.socket] = set()
        self.connection_count = 0  # TCP connections accepted (also ones that never send HTTP)
        self._hops = itertools.count(1)
        self._server: Optional[_Server] = None

    # -- life cycle --

    def start(self) -> "Adversary":
        handler = type("BoundAdversaryHandler", (_Handler,), {"adversary": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.adversary = self
        threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            live = list(self._connections)
        for sock in live:  # wake handlers blocked on keep-alive connections
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "Adversary":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting --

    def put(self, key: Union[str, bytes], size: int, etag: Optional[str] = None,
            last_modified: str = DEFAULT_LAST_MODIFIED, version: int = 1, **extra) -> Obj:
        """Add (or replace) an object. `extra`: switch_after, switch_from_offset, switch_version,
        switch_etag, honour_if_match, listed_size."""
        k = as_bytes(key)
        obj = Obj(k, size, etag or default_etag(k, version), last_modified, version, **extra)
        if (obj.switch_after is not None or obj.switch_from_offset is not None) and obj.switch_etag is None:
            obj.switch_etag = default_etag(k, obj.switch_version)
        with self._lock:
            self._objects[k] = obj
        return obj

    def obj(self, key: Union[str, bytes]) -> Obj:
        with self._lock:
            return self._objects[as_bytes(key)]

    def on_get(self, key: Union[str, bytes], *behaviours: Behaviour) -> None:
        """Arm behaviours for GETs of `key` (the first one with times left applies)."""
        with self._lock:
            self._behaviours.setdefault(as_bytes(key), []).extend(dataclasses.replace(b) for b in behaviours)

    def clear_behaviours(self, key: Union[str, bytes, None] = None) -> None:
        with self._lock:
            if key is None:
                self._behaviours.clear()
            else:
                self._behaviours.pop(as_bytes(key), None)

    def set_listing(self, prefix: Union[str, bytes], body: Optional[ListingBody]) -> None:
        """Answer every listing of `prefix` with `body`: bytes (status 200), or a function
        (query dict, call number from 1) -> bytes or (status, bytes). None removes it."""
        with self._lock:
            p = as_bytes(prefix)
            if body is None:
                self._listings.pop(p, None)
            else:
                self._listings[p] = body
                self._listing_calls[p] = 0

    def add_raw_entry(self, prefix: Union[str, bytes], fragment: Union[str, bytes]) -> None:
        """Splice a raw XML fragment (e.g. a `<Contents>…</Contents>`) into the first page
        of each generated listing of `prefix`, verbatim (also with encoding-type=url)."""
        with self._lock:
            self._raw_entries.setdefault(as_bytes(prefix), []).append(as_bytes(fragment))

    def set_page_size(self, prefix: Union[str, bytes], keys: int) -> None:
        """Keys per generated page of `prefix`, whatever max-keys the client asks."""
        with self._lock:
            self._page_sizes[as_bytes(prefix)] = keys

    def listing_calls(self, prefix: Union[str, bytes]) -> int:
        with self._lock:
            return self._listing_calls.get(as_bytes(prefix), 0)

    # -- the log --

    def records(self) -> list[Record]:
        with self._lock:
            return [dataclasses.replace(r) for r in self._records]

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()

    def gets(self, key: Union[str, bytes, None] = None) -> list[Record]:
        """GETs of objects (not listings), optionally of one key."""
        k = None if key is None else as_bytes(key)
        return [r for r in self.records() if r.method == "GET" and not r.is_listing
                and (k is None or r.key == k)]

    def listings(self, prefix: Union[str, bytes, None] = None) -> list[Record]:
        p = None if prefix is None else as_bytes(prefix).decode("utf-8", "surrogateescape")
        return [r for r in self.records() if r.is_listing and (p is None or r.query.get("prefix", "") == p)]

    def wait_idle(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Return once no request is in flight and none started or ended for `quiet` s
        (measured here, by the server); fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                now = time.monotonic()
                if self._inflight == 0 and now - self._last_activity >= quiet:
                    return
                if now > deadline:
                    raise AssertionError(f"{self.name}: not idle after {timeout}s "
                                         f"({self._inflight} in flight; last: {self._records[-3:]})")
                wait = quiet - (now - self._last_activity) if self._inflight == 0 else quiet
                self._lock.wait(max(0.01, min(wait, deadline - now)))

    # -- internals used by the handler --

    def _connected(self, sock: socket.socket) -> None:
        with self._lock:
            self.connection_count += 1

    def _begin(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)
            self._inflight += 1
            self._last_activity = time.monotonic()
            self._lock.notify_all()

    def _end(self, record: Record) -> None:
        with self._lock:
            record.finished = time.monotonic()
            self._inflight -= 1
            self._last_activity = time.monotonic()
            self._lock.notify_all()

    def _update(self, record: Record, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)

    def _listing_override(self, prefix: bytes, query: dict):
        with self._lock:
            body = self._listings.get(prefix)
            if body is None:
                return None
            self._listing_calls[prefix] += 1
            call = self._listing_calls[prefix]
        result = body(query, call) if callable(body) else body
        return result if isinstance(result, tuple) else (200, result)

    def _object_for_get(self, key: bytes, first: int):
        """Count the GET, apply a due version switch, pick the behaviour (consuming it)."""
        with self._lock:
            obj = self._objects.get(key)
            if obj is None:
                return None, None
            obj.gets += 1
            due = ((obj.switch_after is not None and obj.gets > obj.switch_after)
                   or (obj.switch_from_offset is not None and first >= obj.switch_from_offset))
            if due and obj.version != obj.switch_version:
                obj.version, obj.etag = obj.switch_version, obj.switch_etag
            chosen = None
            for b in self._behaviours.get(key, []):
                if first < getattr(b, "from_offset", 0):
                    continue
                if b.times is None or b.times > 0:
                    if b.times is not None:
                        b.times -= 1
                    chosen = dataclasses.replace(b)
                    break
            return dataclasses.replace(obj), chosen

    def render_listing(self, query: dict) -> bytes:
        """A generated ListObjectsV2 page from the object table."""
        prefix = as_bytes(query.get("prefix", ""))
        delimiter = as_bytes(query.get("delimiter", ""))
        url = query.get("encoding-type") == "url"
        token = query.get("continuation-token")
        after = bytes.fromhex(token) if token else as_bytes(query.get("start-after", ""))
        with self._lock:
            max_keys = self._page_sizes.get(prefix) or min(1000, int(query.get("max-keys") or 1000))
            objects = sorted((o for k, o in self._objects.items() if k.startswith(prefix)), key=lambda o: o.key)
            objects = [dataclasses.replace(o) for o in objects]
            raw = list(self._raw_entries.get(prefix, [])) if not token else []
        items: list[tuple[bytes, Optional[Obj]]] = []  # (key or common prefix, object or None)
        seen_prefixes = set()
        for o in objects:
            rest = o.key[len(prefix):]
            if delimiter and delimiter in rest:
                cp = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                if cp not in seen_prefixes:
                    seen_prefixes.add(cp)
                    items.append((cp, None))
            else:
                items.append((o.key, o))
        items.sort(key=lambda item: item[0])
        items = [i for i in items if i[0] > after] if after else items
        page, more = items[:max_keys], len(items) > max_keys

        def enc(value: bytes) -> bytes:
            return quote_from_bytes(value, safe="/").encode() if url else _xml_escape(value)

        out = [b'<?xml version="1.0" encoding="UTF-8"?>\n'
               b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               b"<Name>%s</Name><Prefix>%s</Prefix>" % (self.bucket.encode(), enc(prefix))]
        if delimiter:
            out.append(b"<Delimiter>%s</Delimiter>" % enc(delimiter))
        if url:
            out.append(b"<EncodingType>url</EncodingType>")
        if token:
            out.append(b"<ContinuationToken>%s</ContinuationToken>" % token.encode())
        out.append(b"<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys>" % (len(page), max_keys))
        out.append(b"<IsTruncated>%s</IsTruncated>" % (b"true" if more else b"false"))
        if more:
            out.append(b"<NextContinuationToken>%s</NextContinuationToken>" % page[-1][0].hex().encode())
        for name, o in page:
            if o is None:
                continue
            size = o.listed_size if o.listed_size is not None else str(o.size)
            out.append(b"<Contents><Key>%s</Key><LastModified>%s</LastModified>"
                       b"<ETag>&quot;%s&quot;</ETag><Size>%s</Size><StorageClass>STANDARD</StorageClass></Contents>"
                       % (enc(name), o.last_modified.encode(), o.etag.encode(), size.encode()))
        out.extend(raw)
        for name, o in page:
            if o is None:
                out.append(b"<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % enc(name))
        out.append(b"</ListBucketResult>")
        return b"".join(out)


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*":
            return True
        if c.startswith("W/"):
            c = c[2:]
        if c.strip('"') == etag:
            return True
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    adversary: Adversary

    def log_message(self, *args) -> None:
        pass  # the Record log is the log

    def setup(self) -> None:
        super().setup()
        with self.adversary._lock:
            self.adversary._connections.add(self.connection)

    def finish(self) -> None:
        with self.adversary._lock:
            self.adversary._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        adv = self.adversary
        target = self.path
        raw_path, _, raw_query = target.partition("?")
        record = Record(self.command, target, unquote_to_bytes(raw_path), _parse_query(raw_query), raw_query,
                        {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        adv._begin(record)
        try:
            self._dispatch(record)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            adv._end(record)

    def _dispatch(self, record: Record) -> None:
        adv = self.adversary
        parts = record.path.lstrip(b"/").split(b"/", 1)
        if parts[0] != adv.bucket.encode():
            return self._error(record, 404, "NoSuchBucket", "The specified bucket does not exist")
        if len(parts) == 1 or parts[1] == b"":
            if "list-type" not in record.query:
                return self._error(record, 400, "InvalidRequest", "only ListObjectsV2 here")
            prefix = as_bytes(record.query.get("prefix", ""))
            override = adv._listing_override(prefix, record.query)
            if override is not None:
                status, body = override
                return self._send(record, status, body, {"Content-Type": "application/xml"})
            return self._send(record, 200, adv.render_listing(record.query), {"Content-Type": "application/xml"})
        self._object(record, parts[1])

    def _object(self, record: Record, key: bytes) -> None:
        adv = self.adversary
        asked = self.headers.get("Range", "")
        start = asked.partition("=")[2].partition("-")[0].strip()
        obj, behaviour = adv._object_for_get(key, int(start) if start.isdigit() else 0)
        if obj is None:
            return self._error(record, 404, "NoSuchKey", "The specified key does not exist.")
        if behaviour is not None:
            adv._update(record, behaviour=type(behaviour).__name__)
        if isinstance(behaviour, Error):
            return self._error(record, behaviour.status, behaviour.code, behaviour.message)
        if isinstance(behaviour, Redirect):
            if behaviour.to == "self":
                location = record.target
            elif behaviour.to == "chain":
                location = record.target.partition("?")[0] + f"?hop={next(adv._hops)}"
            else:
                location = behaviour.to.rstrip("/") + record.target
            return self._send(record, behaviour.status, s3_error_body("PermanentRedirect", "redirected"),
                              {"Location": location, "Content-Type": "application/xml"})
        if_match = self.headers.get("If-Match")
        if if_match is not None and obj.honour_if_match and not _etag_matches(if_match, obj.etag):
            return self._error(record, 412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold")
        headers = {"ETag": f'"{obj.etag}"', "Accept-Ranges": "bytes",
                   "Last-Modified": formatdate(time.time(), usegmt=True),
                   "Content-Type": "application/octet-stream"}
        rng = self.headers.get("Range")
        if rng is None:
            return self._body(record, 200, obj, 0, obj.size, headers)
        first, last = self._parse_range(rng, obj.size)
        if first is None:
            headers["Content-Range"] = f"bytes */{obj.size}"
            return self._error(record, 416, "InvalidRange", "The requested range is not satisfiable", headers)
        total = obj.size
        if isinstance(behaviour, WrongRange):
            first, last = first + behaviour.start_shift, last + behaviour.start_shift + behaviour.end_shift
            first, last = max(0, first), max(0, first, last)
            total += behaviour.total_shift
        headers["Content-Range"] = f"bytes {first}-{last}/{total}"
        if isinstance(behaviour, BadContentRange):
            headers["Content-Range"] = behaviour.value.format(first=first, last=last, size=obj.size)
        self._body(record, 206, obj, first, last + 1 - first, headers)

    @staticmethod
    def _parse_range(header: str, size: int):
        unit, _, spec = header.partition("=")
        if unit.strip() != "bytes" or "," in spec:
            return None, None
        a, _, b = spec.strip().partition("-")
        try:
            if a == "":
                n = int(b)
                first, last = max(0, size - n), size - 1
            else:
                first = int(a)
                last = min(int(b), size - 1) if b else size - 1
        except ValueError:
            return None, None
        if first >= size or last < first:
            return None, None
        return first, last

    def _body(self, record: Record, status: int, obj: Obj, start: int, length: int, headers: dict) -> None:
        self.adversary._update(record, status=status)
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        while sent < length:
            n = min(CHUNK, length - sent)
            self.wfile.write(content(obj.key, obj.version, start + sent, n))
            sent += n
            self.adversary._update(record, bytes_sent=sent)

    def _error(self, record: Record, status: int, code: str, message: str, headers: Optional[dict] = None) -> None:
        self._send(record, status, s3_error_body(code, message, record.target),
                   {"Content-Type": "application/xml", **(headers or {})})

    def _send(self, record: Record, status: int, body: bytes, headers: dict) -> None:
        self.adversary._update(record, status=status)
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.adversary._update(record, bytes_sent=len(body))
