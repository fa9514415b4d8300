#!/usr/bin/env bash
# Build tapline's OCI image without a container daemon: the static binary
# (scripts/build-static.sh), staged with CA certificates, time zones and a
# non-root user into target/image/context, then `buildah bud` on Containerfile.
# Leaves the image in the local store as localhost/tapline:VERSION (and :latest)
# and as an OCI archive, target/image/tapline-VERSION.oci.tar (for skopeo,
# `podman load`, or a registry push).
#   scripts/build-image.sh [--stage-only]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-lib.sh

bin=$(scripts/build-static.sh | tail -1)
version=$("$bin" --version | awk '{print $2}')
context=target/image/context
rm -rf "$context"
mkdir -p "$context"/rootfs/{usr/bin,etc/ssl/certs,etc/tapline,usr/share,var/lib/tapline,tmp}
install -m 0755 "$bin" "$context/rootfs/usr/bin/tapline"
cp /etc/ssl/certs/ca-certificates.crt "$context/rootfs/etc/ssl/certs/"
cp -a /usr/share/zoneinfo "$context/rootfs/usr/share/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$context/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$context/rootfs/etc/group"
chmod 1777 "$context/rootfs/tmp"
chown 65532:65532 "$context/rootfs/var/lib/tapline"
cp Containerfile "$context/"
[ "${1:-}" = --stage-only ] && { echo "$context"; exit 0; }

install_container_tools
image=localhost/tapline:$version
buildah "${STORAGE[@]}" bud --quiet --timestamp 0 \
  --label org.opencontainers.image.title=tapline \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.description="Observability pipeline for API gateways: Kong logs, eBPF traffic and APM spans in one trace" \
  -f "$context/Containerfile" -t "$image" -t localhost/tapline:latest "$context" >&2
# The images these tags named before: gone, so repeated builds do not fill the store.
buildah "${STORAGE[@]}" rmi --prune >/dev/null 2>&1 || true
archive=target/image/tapline-$version.oci.tar
rm -f "$archive"
buildah "${STORAGE[@]}" push --quiet "$image" "oci-archive:$archive:tapline:$version" >&2
echo "image $image: $(du -sk "$context/rootfs" | cut -f1) KiB unpacked ($(du -k "$context/rootfs/usr/bin/tapline" | cut -f1) KiB the binary), $(du -k "$archive" | cut -f1) KiB compressed ($archive)" >&2
echo "$image"
