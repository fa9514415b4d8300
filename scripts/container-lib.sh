# Shared by the image scripts: buildah and podman from Debian, set for a machine
# with no container daemon, no systemd and cgroups v1 (as CI's): vfs storage,
# the runc runtime (Debian's crun refuses cgroups v1 mixed with v2), cgroupfs,
# and file limits no higher than this shell's (podman's defaults exceed them).
STORAGE=(--storage-driver vfs)
PODMAN=(podman "${STORAGE[@]}" --runtime runc --cgroup-manager cgroupfs)
ULIMITS=(--ulimit "nofile=$(($(ulimit -Hn) < 16384 ? $(ulimit -Hn) : 16384))" --ulimit nproc=4096:4096)

install_container_tools() {
  scripts/install-build-deps.sh buildah podman runc >&2
}
