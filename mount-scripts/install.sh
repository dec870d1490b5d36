#!/usr/bin/env bash
# Installs goesfs: the binary, the mount(8) helper and the systemd unit, in standard places.
#   mount-scripts/install.sh [--prefix /usr/local]
# (The unit goes to /etc/systemd/system and the helper to /sbin, where mount(8) and systemd look,
#  unless --prefix is not /usr/local: then everything stays under the prefix.)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/scripts/lib/deps.sh"
prefix=/usr/local
while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        *) echo "usage: install.sh [--prefix DIR]" >&2; exit 2 ;;
    esac
done

ensure_apt_packages "${GOESFS_APT_PACKAGES[@]}"
(cd "$REPO_ROOT" && swift build -c release >&2)
bin="$(cd "$REPO_ROOT" && swift build -c release --show-bin-path)/goesfs"

if [[ $prefix == /usr/local ]]; then sbin=/sbin; units=/etc/systemd/system; else sbin=$prefix/sbin; units=$prefix/lib/systemd/system; fi
install -D -m 0755 "$bin" "$prefix/bin/goesfs"
install -D -m 0755 "$REPO_ROOT/mount-scripts/mount.goesfs" "$sbin/mount.goesfs"
sed "s#/usr/local/bin/goesfs#$prefix/bin/goesfs#" "$REPO_ROOT/mount-scripts/goesfs@.service" > "$REPO_ROOT/.build/goesfs@.service"
install -D -m 0644 "$REPO_ROOT/.build/goesfs@.service" "$units/goesfs@.service"
# The site cache (nginx in front of the buckets, for a lab or cluster; README "Site cache"): the
# script finds its config template in ../share/goesfs/site-cache next to itself.
install -D -m 0755 "$REPO_ROOT/mount-scripts/goesfs-site-cache" "$prefix/bin/goesfs-site-cache"
install -D -m 0644 "$REPO_ROOT/mount-scripts/site-cache/nginx.conf.template" "$prefix/share/goesfs/site-cache/nginx.conf.template"
sed "s#/usr/local/bin/goesfs-site-cache#$prefix/bin/goesfs-site-cache#" "$REPO_ROOT/mount-scripts/goesfs-site-cache.service" > "$REPO_ROOT/.build/goesfs-site-cache.service"
install -D -m 0644 "$REPO_ROOT/.build/goesfs-site-cache.service" "$units/goesfs-site-cache.service"
if [[ $prefix == /usr/local ]]; then
    # The service's user (goesfs@.service runs as it): no login shell, no home of its own.
    id goesfs >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin goesfs
    install -d /etc/goesfs /var/cache/goesfs
    install -d -o goesfs -g goesfs -m 0750 /var/log/goesfs
    # A user's mount may use -o allow_other (the unit's, so everyone can read it) only with this line.
    if ! grep -qx '[[:space:]]*user_allow_other[[:space:]]*' /etc/fuse.conf 2>/dev/null; then
        echo user_allow_other >> /etc/fuse.conf
        echo "enabled user_allow_other in /etc/fuse.conf (goesfs@.service mounts as user goesfs with -o allow_other)"
    fi
    [[ -f /etc/goesfs/goesfs.toml ]] || printf '# goesfs mount settings; keys mirror `goesfs mount --help`\n# cache_size = "50G"\n' > /etc/goesfs/goesfs.toml
    command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null || true
fi
echo "installed: $prefix/bin/goesfs, $sbin/mount.goesfs, $units/goesfs@.service, $prefix/bin/goesfs-site-cache, $units/goesfs-site-cache.service"
