"""The recording proxy itself: forwarding, logging, keep-alive and faults."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from tests.fixtures.goes_fixtures import MiB, fixture_objects
from tests.support.polling import wait_for
from tests.support.proxy import Delay, DropAfter, Respond

OBJ = next(o for o in fixture_objects() if o.kind == "random" and o.size == MiB + 1)
PATH = f"/{OBJ.bucket}/{OBJ.key}"


@pytest.fixture
def conn(proxy):
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    yield c
    c.close()


def get(conn, path=PATH, headers=None):
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def test_ranged_get_is_forwarded_and_recorded(proxy, conn):
    response, body = get(conn, headers={"Range": "bytes=1048570-1048576"})
    assert response.status == 206
    assert body == OBJ.data[1048570:]
    # Only this request: a daemon of an earlier test may still be finishing a prefetch.
    [record] = [r for r in proxy.records() if r.range == "bytes=1048570-1048576"]
    assert (record.method, record.path, record.range) == ("GET", PATH, "bytes=1048570-1048576")
    assert (record.status, record.bytes_sent, record.fault) == (206, 7, None)


def test_whole_object_streams_with_content_length(conn):
    response, body = get(conn)
    assert response.status == 200
    assert int(response.getheader("Content-Length")) == OBJ.size
    assert body == OBJ.data


def test_client_connection_is_kept_alive(proxy, conn):
    get(conn)
    sock = conn.sock
    assert sock is not None, "proxy closed the connection after one response"
    response, _ = get(conn, headers={"Range": "bytes=0-9"})
    assert response.status == 206 and conn.sock is sock
    assert len(proxy.object_gets(PATH)) == 2


def test_head_has_length_and_no_body(proxy, conn):
    conn.request("HEAD", PATH)
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length")) == OBJ.size
    assert proxy.object_gets() == []  # HEAD is not a data GET


def test_listing_is_recorded_but_not_an_object_get(proxy, conn):
    response, body = get(conn, f"/{OBJ.bucket}?list-type=2&prefix=ABI-L1b-RadC/&delimiter=/")
    assert response.status == 200 and b"<CommonPrefixes>" in body
    assert proxy.records()[0].is_listing and proxy.object_gets() == []


def test_status_fault_applies_to_the_next_k_matches(proxy, conn):
    proxy.add_fault(OBJ.key, Respond(503), times=2)
    statuses = [get(conn, headers={"Range": "bytes=0-0"})[0].status for _ in range(3)]
    assert statuses == [503, 503, 206]
    assert [r.fault for r in proxy.records()] == ["Respond", "Respond", None]


def test_status_fault_ignores_other_paths(proxy, conn):
    proxy.add_fault("/no/such/path", Respond(404), times=None)
    assert get(conn, headers={"Range": "bytes=0-0"})[0].status == 206


def test_error_body_is_s3_xml(proxy, conn):
    proxy.add_fault(OBJ.key, Respond(404))
    response, body = get(conn)
    assert response.status == 404 and b"<Code>NoSuchKey</Code>" in body


def test_drop_after_cuts_the_body_and_closes(proxy, conn):
    proxy.add_fault(OBJ.key, DropAfter(1000))
    conn.request("GET", PATH)
    response = conn.getresponse()
    assert int(response.getheader("Content-Length")) == OBJ.size
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == OBJ.data[:1000]
    [record] = proxy.records()
    assert record.bytes_sent == 1000 and record.fault == "DropAfter"


def test_delay_fault_delays(proxy, conn):
    proxy.add_fault(OBJ.key, Delay(0.3))
    began = time.monotonic()
    response, _ = get(conn, headers={"Range": "bytes=0-0"})
    assert response.status == 206 and time.monotonic() - began >= 0.3


def test_reset_empties_the_log(proxy, conn):
    get(conn, headers={"Range": "bytes=0-0"})
    proxy.reset()
    assert proxy.records() == []


# --- faults for the network tests (reset, stall, throttle, every Nth, outage) ---

def test_reset_before_response_is_a_connection_reset(proxy, conn):
    from tests.support.proxy import Reset
    proxy.add_fault(OBJ.key, Reset())
    with pytest.raises(ConnectionResetError):
        get(conn)


def test_reset_mid_body_after_n_bytes(proxy, conn):
    from tests.support.proxy import Reset
    proxy.add_fault(OBJ.key, Reset(5000))
    conn.request("GET", PATH)
    response = conn.getresponse()
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        response.read()
    assert proxy.records()[0].bytes_sent == 5000


def test_stall_hangs_until_released(proxy, conn):
    from tests.support.proxy import Stall
    proxy.add_fault(OBJ.key, Stall(100, seconds=30))
    conn.sock = None
    conn.timeout = 0.5
    conn.request("GET", PATH)
    response = conn.getresponse()
    assert response.read(100) == OBJ.data[:100]
    with pytest.raises(TimeoutError):
        response.read(1)  # nothing more comes while stalled
    proxy.release_stalls()


def test_throttle_paces_the_body(proxy, conn):
    from tests.support.proxy import Throttle
    proxy.add_fault(OBJ.key, Throttle(2 * MiB))
    began = time.monotonic()
    _, body = get(conn)
    took = time.monotonic() - began
    # 1 MiB at 2 MiB/s: never faster than 0.5 s (unthrottled it takes milliseconds);
    # the upper bound leaves room for a loaded machine.
    assert body == OBJ.data and 0.45 < took < 3.0, took


def test_log_is_read_once_requests_in_flight_are_done(proxy, conn):
    proxy.add_fault(OBJ.key, Delay(0.5))
    client = threading.Thread(target=get, args=(conn,), kwargs={"headers": {"Range": "bytes=0-0"}})
    client.start()
    try:
        wait_for(lambda: proxy.records(wait=False), 5, "the request to reach the proxy")
        [record] = proxy.records()  # while it is delayed: waits for it to finish
        assert record.done and (record.status, record.bytes_sent) == (206, 1)
    finally:
        client.join(10)


def test_stall_ends_when_the_client_hangs_up(proxy, conn):
    from tests.support.proxy import Stall
    proxy.add_fault(OBJ.key, Stall(100, seconds=30))
    conn.request("GET", PATH)
    assert conn.getresponse().read(100) == OBJ.data[:100]
    conn.close()  # a client giving up on the stall
    proxy.wait_idle(timeout=5)  # long before the 30 s
    [record] = proxy.records()
    assert record.done and record.bytes_sent == 100 and record.fault == "Stall"


def test_every_nth_matching_request(proxy, conn):
    proxy.add_fault(OBJ.key, Respond(503), times=None, every=3)
    statuses = [get(conn, headers={"Range": "bytes=0-0"})[0].status for _ in range(7)]
    assert statuses == [206, 206, 503, 206, 206, 503, 206]


def test_go_down_refuses_then_come_up_on_same_port(s3):
    from tests.support.proxy import Proxy
    with Proxy(s3.url) as p:
        port = p.port
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        get(idle, headers={"Range": "bytes=0-0"})  # a kept-alive connection
        p.go_down()
        with pytest.raises(OSError):  # the kept-alive one is cut, and a new one refused
            get(idle, headers={"Range": "bytes=0-0"})
        with pytest.raises(ConnectionRefusedError):
            get(http.client.HTTPConnection("127.0.0.1", port, timeout=5))
        p.come_up()
        assert p.port == port
        assert get(http.client.HTTPConnection("127.0.0.1", port, timeout=5),
                   headers={"Range": "bytes=0-0"})[0].status == 206
