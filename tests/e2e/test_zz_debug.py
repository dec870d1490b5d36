import os, time
from tests.fixtures.goes_fixtures import big_object

def test_debug(mount_factory, proxy):
    BIG = big_object()
    m = mount_factory("m", "19")
    time.sleep(1)
    proxy.reset()
    p = m.path / BIG.bucket / BIG.key
    with open(p, "rb", buffering=0) as f:
        f.read(1)
    time.sleep(0.5)
    for r in proxy.records():
        print("REQ", r.method, r.path[-40:], r.query[:60], r.range)
