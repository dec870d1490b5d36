# Shared by scripts/test and mount-scripts/goesfs-up: install only what is missing.
# Source it; it expects REPO_ROOT to be set.

GOESFS_APT_PACKAGES=(libfuse3-dev fuse3 libcurl4-openssl-dev libsqlite3-dev pkg-config)
# Only the tests need these: promtool and a Prometheus server check `/metrics` (tests/e2e/test_observability.py);
# nginx runs the site cache tier (tests/e2e/test_site_cache.py; Debian's has the slice module).
GOESFS_TEST_APT_PACKAGES=(prometheus nginx)

# apt-get only when a package is really missing (dpkg -s also "finds" removed ones).
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=""; ((EUID == 0)) || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# (Re)build .venv only when tests/requirements.txt changed since the last install.
ensure_venv() {
    local venv="$REPO_ROOT/.venv" reqs="$REPO_ROOT/tests/requirements.txt"
    local stamp="$venv/.requirements.sha256" want
    want=$(sha256sum "$reqs" | cut -d' ' -f1)
    if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    echo "setting up $venv from tests/requirements.txt" >&2
    python3 -m venv "$venv" 2>/dev/null || { ensure_apt_packages python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    echo "$want" >"$stamp"
}
