"""The three filesystems under test, each mountable with a given cache folder.

`root` is the folder where the bucket's keys appear: goesfs mounts all buckets
(MNT/noaa-goes16/<key>), s3fs and rclone mount one bucket (MNT/<key>).
"""
import os
import shutil
import subprocess
import time


class MountError(RuntimeError):
    pass


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def pids_for(mnt, exe_name):
    """Processes named exe_name whose command line names the mountpoint (the daemons)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == exe_name \
                and mnt.encode() in argv:
            found.append(int(pid))
    return found


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise MountError(f"timed out after {timeout}s waiting for {what}")


class Mount:
    name = exe = ""

    def __init__(self, work, endpoint, bucket):
        self.work, self.endpoint, self.bucket = work, endpoint, bucket
        self.mnt = os.path.join(work, "mnt", self.name)
        self.log = os.path.join(work, "logs", f"{self.name}.log")
        self.cache_dir = None
        self.pid = None
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(os.path.dirname(self.log), exist_ok=True)

    @property
    def root(self):
        return self.mnt

    def path(self, key):
        return os.path.join(self.root, key)

    def command(self):
        raise NotImplementedError

    def mount(self, cache_dir):
        if is_mounted(self.mnt):
            raise MountError(f"{self.mnt} is still mounted")
        self.cache_dir = cache_dir
        os.makedirs(cache_dir, exist_ok=True)
        # Output to a file, not a pipe: a daemon that keeps the pipe open would make us wait forever.
        out_path = os.path.join(os.path.dirname(self.log), f"{self.name}.mount-output")
        with open(out_path, "w") as out:
            proc = subprocess.run(self.command(), env=self.env(), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode != 0:
            with open(out_path) as f:
                raise MountError(f"{self.name} mount failed ({proc.returncode}): {f.read().strip()[-2000:]}")
        # s3fs and rclone may return before the kernel mount exists: wait until the root answers.
        wait_until(lambda: is_mounted(self.mnt) and os.path.isdir(self.root), 30, f"{self.name} mount")
        pids = pids_for(self.mnt, self.exe)
        if len(pids) != 1:
            raise MountError(f"{self.name}: expected one daemon for {self.mnt}, found {pids}")
        self.pid = pids[0]

    def env(self):
        return None

    def unmount(self):
        """Unmounts and waits for the daemon to exit, so its cache is complete for a remount."""
        if is_mounted(self.mnt):
            r = subprocess.run(self.unmount_command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=60)
            if r.returncode != 0 and is_mounted(self.mnt):
                subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)
                raise MountError(f"{self.name} unmount failed: {r.stdout.strip()}")
        if self.pid:
            pid, self.pid = self.pid, None
            wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 30,
                       f"{self.name} daemon {pid} to exit")

    def unmount_command(self):
        return ["fusermount3", "-u", self.mnt]

    def cache_data_file(self):
        return None


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Goesfs(Mount):
    name = exe = "goesfs"

    def __init__(self, work, endpoint, bucket, binary, extra=(), name=None):
        if name:
            self.name = name
        self.binary = binary
        self.extra = list(extra)
        super().__init__(work, endpoint, bucket)

    @property
    def root(self):
        return os.path.join(self.mnt, self.bucket)

    def command(self):
        return [self.binary, "mount", self.mnt, "--endpoint", self.endpoint, "--cache-dir", self.cache_dir,
                "--satellites", self.bucket.rsplit("goes", 1)[1], "--log-file", self.log] + self.extra

    def unmount_command(self):
        return [self.binary, "unmount", self.mnt]

    def cache_data_file(self):
        """The largest data file: after reading the big object, that object's cached bytes."""
        best = None
        for dirpath, _dirs, files in os.walk(os.path.join(self.cache_dir, "objects")):
            for f in files:
                if f.endswith(".data"):
                    p = os.path.join(dirpath, f)
                    if best is None or os.path.getsize(p) > os.path.getsize(best):
                        best = p
        return best


class S3fs(Mount):
    name = exe = "s3fs"

    def command(self):
        opts = [f"url={self.endpoint}", "use_path_request_style", "public_bucket=1", "ro",
                f"use_cache={self.cache_dir}", f"logfile={self.log}", "dbglevel=warn"]
        return ["s3fs", self.bucket, self.mnt] + [a for o in opts for a in ("-o", o)]

    def unmount_command(self):
        # s3fs 1.90 is a libfuse2 program; fusermount3 unmounts it too where fuse2's tool is missing.
        return [shutil.which("fusermount") or "fusermount3", "-u", self.mnt]


class Rclone(Mount):
    name = exe = "rclone"

    def command(self):
        conf = os.path.join(self.work, "rclone.conf")
        with open(conf, "w") as f:
            # Anonymous (no keys) path-style S3 against our server.
            f.write(f"[bench]\ntype = s3\nprovider = Other\nendpoint = {self.endpoint}\n"
                    "env_auth = false\nforce_path_style = true\nno_check_bucket = true\n")
        return ["rclone", "mount", f"bench:{self.bucket}", self.mnt, "--config", conf, "--daemon",
                "--read-only", "--vfs-cache-mode", "full", "--cache-dir", self.cache_dir,
                "--use-server-modtime", "--log-file", self.log, "--log-level", "NOTICE"]

    def env(self):
        # rclone's AWS SDK fails outright ("unable to load custom CA bundle") when AWS_CA_BUNDLE is
        # set, even for a plain-http endpoint; no AWS_* setting is meant for this local server.
        return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def available(name):
    return shutil.which({"s3fs": "s3fs", "rclone": "rclone"}[name]) is not None
