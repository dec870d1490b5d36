"""Issue 12: the Kubernetes manifests under deploy/ load as YAML and agree with each other, with
goesfs's CLI and with the site cache's config (no cluster needed: these are checks on paper).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.site_cache import nginx_path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
API_VERSIONS = {"DaemonSet": "apps/v1", "Deployment": "apps/v1", "Service": "v1",
                "ConfigMap": "v1", "PersistentVolumeClaim": "v1"}


def documents() -> list[dict]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def one(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def test_every_manifest_has_a_known_kind_and_the_fields_it_needs():
    docs = documents()
    assert {d["kind"] for _, d in docs} == set(API_VERSIONS), [d["kind"] for _, d in docs]
    names = set()
    for file, d in docs:
        assert d["apiVersion"] == API_VERSIONS[d["kind"]], (file, d["kind"], d["apiVersion"])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), (file, d["metadata"])
        assert (d["kind"], d["metadata"]["name"]) not in names, f"{file}: {d['kind']} defined twice"
        names.add((d["kind"], d["metadata"]["name"]))
        if d["kind"] in ("DaemonSet", "Deployment"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            selector = d["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), (file, selector, labels)
            spec = pod(d)
            volumes = {v["name"] for v in spec["volumes"]}
            for c in spec["containers"]:
                assert c["name"] and c["image"], (file, c)
                for m in c.get("volumeMounts", []):
                    assert m["name"] in volumes, (file, c["name"], m["name"], volumes)
                    assert m["mountPath"].startswith("/"), m


def test_service_reaches_the_site_cache_pods_on_the_port_nginx_listens_on():
    service, deployment = one("Service", "goesfs-site-cache"), one("Deployment", "goesfs-site-cache")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (port,) = service["spec"]["ports"]
    target = port["targetPort"]
    assert (ports[target] if isinstance(target, str) else target) == 8080 == port["port"]
    config = one("ConfigMap", "goesfs-site-cache-nginx")["data"]["nginx.conf"]
    assert "listen 0.0.0.0:8080;" in config
    # The probes ask a path the config answers itself.
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz" and container[probe]["httpGet"]["port"] == "http"
    assert "location = /healthz" in config


def test_site_cache_pod_paths_agree_with_its_config():
    deployment = one("Deployment", "goesfs-site-cache")
    spec = pod(deployment)
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    command = container["command"]
    prefix, conf = command[command.index("-p") + 1], command[command.index("-c") + 1]
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == "goesfs-site-cache-nginx"
    assert conf == mounts[config_volume] + "/nginx.conf" and prefix == mounts["state"]
    config = one("ConfigMap", "goesfs-site-cache-nginx")["data"]["nginx.conf"]
    assert f"pid {prefix}/nginx.pid;" in config and f"proxy_temp_path {prefix}/proxy_temp;" in config
    assert f"proxy_cache_path {mounts['cache']} " in config
    claim = volumes["cache"]["persistentVolumeClaim"]["claimName"]
    pvc = one("PersistentVolumeClaim", claim)
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # nginx's cap stays below the volume's size.
    cap = int(re.search(r"max_size=(\d+)g", config).group(1))
    size = int(re.fullmatch(r"(\d+)Gi", pvc["spec"]["resources"]["requests"]["storage"]).group(1))
    assert cap < size * 1.0737, (cap, size)  # 1 GiB = 1.0737 GB
    # The pod starts nginx unprivileged, so the config names no user to switch to.
    assert spec["securityContext"]["runAsNonRoot"] and not re.search(r"^user ", config, re.M)


def test_configmap_is_the_rendered_template():
    done = subprocess.run([str(DEPLOY / "render-site-cache-configmap")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (DEPLOY / "site-cache-configmap.yaml").read_text(), \
        "deploy/site-cache-configmap.yaml is stale: run deploy/render-site-cache-configmap > deploy/site-cache-configmap.yaml"


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed (scripts/test installs it)")
def test_configmap_config_passes_nginx_t(tmp_path):
    """nginx -t on the ConfigMap's config, its paths moved under tmp_path and its upstream to
    loopback (nginx resolves upstream names while parsing: no DNS from the tests)."""
    config = one("ConfigMap", "goesfs-site-cache-nginx")["data"]["nginx.conf"]
    config = (config.replace("/var/cache/goesfs-site-cache", str(tmp_path / "cache"))
                    .replace("/tmp/nginx", str(tmp_path / "state"))
                    .replace("server s3.amazonaws.com:443;", "server 127.0.0.1:443;")
                    .replace("listen 0.0.0.0:8080;", "listen 127.0.0.1:8080;"))
    (tmp_path / "state").mkdir()
    (tmp_path / "nginx.conf").write_text(config)
    done = subprocess.run([nginx_path(), "-t", "-p", str(tmp_path / "state"), "-c", str(tmp_path / "nginx.conf"),
                           "-e", "stderr"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_goesfs_daemonset_mounts_to_the_host_and_uses_the_site_cache_first(goesfs_bin_or_none):
    ds = one("DaemonSet", "goesfs")
    spec = pod(ds)
    (container,) = spec["containers"]
    argv = container["command"] + container["args"]
    assert argv[1] == "mount" and "--foreground" in argv
    mountpoint = argv[2]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    # The mount reaches the host only with Bidirectional propagation, which needs privileged.
    assert mounts[mountpoint]["mountPropagation"] == "Bidirectional"
    assert container["securityContext"]["privileged"] is True
    assert volumes[mounts[mountpoint]["name"]]["hostPath"]["path"] == mountpoint
    assert volumes[mounts["/dev/fuse"]["name"]]["hostPath"]["type"] == "CharDevice"
    flags = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    assert volumes[mounts[flags["cache-dir"]]["name"]]["hostPath"]["type"] == "DirectoryOrCreate"
    # Sources in order: the site cache's Service (same namespace), then AWS path-style.
    sources = [a.split("=", 1)[1] for a in argv if a.startswith("--source=")]
    service = one("Service", "goesfs-site-cache")
    assert sources == [f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}",
                       "aws"], sources
    # Every flag is one goesfs mount knows.
    if goesfs_bin_or_none:
        help_text = subprocess.run([goesfs_bin_or_none, "mount", "--help"], capture_output=True, text=True).stdout
        for a in argv[3:]:
            if a.startswith("-"):
                flag = a.split("=", 1)[0]
                assert re.search(rf"(^|\s){re.escape(flag)}[\s<]", help_text), f"goesfs mount has no {flag}"


@pytest.fixture
def goesfs_bin_or_none() -> str | None:
    return os.environ.get("GOESFS_BIN")


def test_readme_lists_each_manifest():
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.iterdir():
        if path.name != "README.md":
            assert path.name in readme, path.name

