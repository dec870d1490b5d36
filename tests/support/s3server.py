"""A local S3 (moto) standing in for the public NOAA buckets.

moto's standalone server speaks the S3 REST API on 127.0.0.1, so goesfs is
tested against real HTTP without any network. Buckets get the same anonymous
read policy as the NOAA ones (moto does not check signatures by default, so the
policy documents intent more than it gates access).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import boto3
from botocore.config import Config

GOES_BUCKETS = ("noaa-goes16", "noaa-goes17", "noaa-goes18", "noaa-goes19")


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it, so parallel runs don't collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until any HTTP answer comes back; fail fast if `proc` died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"S3 server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered, even if not with 200
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 server at {url} not answering after {timeout}s")
            time.sleep(0.05)


def s3_client(endpoint: str):
    """A boto3 client for the local server: dummy credentials, path-style URLs."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def public_read_policy(bucket: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }],
    })


def create_public_buckets(client, buckets: Iterable[str] = GOES_BUCKETS) -> None:
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))


def upload(client, objects: Iterable[tuple[str, str, bytes]], threads: int = 8) -> int:
    """PUT every (bucket, key, data); threads because ~1300 small PUTs dominate setup time."""
    objects = list(objects)

    def put(obj):
        bucket, key, data = obj
        # public-read as on NOAA's buckets: moto checks anonymous HEAD against the
        # made-up action s3:HeadObject, which the bucket policy cannot grant.
        client.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, objects))
    return len(objects)


class MotoServer:
    """moto's standalone server as a child process on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 pid_file: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # The test runner's EXIT trap kills what is named here if pytest dies mid-run.
        self.pid_file = pid_file
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "MotoServer":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        if self.log_path:
            log.close()  # the child holds its own descriptor
        if self.pid_file:
            Path(self.pid_file).write_text(f"{self.proc.pid}\n")
        try:
            wait_until_ready(self.url, timeout, self.proc)
        except Exception:
            self.stop()
            raise
        return self

    def client(self):
        return s3_client(self.url)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pid_file:
            Path(self.pid_file).unlink(missing_ok=True)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    # Handy by hand: `python -m tests.support.s3server` runs a server until Ctrl-C.
    port = int(os.environ.get("PORT", "0")) or None
    with MotoServer(port) as server:
        print(server.url, flush=True)
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            pass
