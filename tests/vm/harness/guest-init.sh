#!/bin/sh
# /init of the VM tier's initramfs (packed by scripts/vm/vm.sh). Runs as PID 1 in the guest:
# loads the modules for 9p and virtio-serial, mounts the host's root read-only at /host with
# fresh proc/sys/dev/bpffs and tmpfs /tmp and /run inside it, then chroots there and starts the
# RPC agent from the checkout (veil.mode=agent), a root shell (veil.mode=shell) or one command
# (veil.mode=exec, the command base64-encoded in veil.exec=, its output on the console and its
# exit status in a last "veil-vm: command exited with status N" line). Whatever ends that program
# powers the guest off, so qemu exits.
export PATH=/bin:/sbin

log() { echo "veil-vm: $*"; }

fail() {
  log "FATAL: $*"
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

mode=agent
checkout=
for arg in $(cat /proc/cmdline); do
  case $arg in
    veil.mode=*) mode=${arg#veil.mode=} ;;
    veil.checkout=*) checkout=${arg#veil.checkout=} ;;
    veil.exec=*) exec_b64=${arg#veil.exec=} ;;
  esac
done

while read -r m; do
  insmod "/lib/modules/$m" || fail "insmod $m failed"
done </lib/modules/load-order

# msize: larger 9p messages cut round trips, which dominate under emulation. cache=loose: the
# host tree does not change under a test run, and caching makes node's module loading fast.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /host ||
  fail "cannot mount the host root over 9p (mount_tag \"host\")"

# A second view of the host root, kept free of the tmpfs mounts below, so a checkout that lives
# under /tmp or /run on the host (CI clones often do) can be shown again at its own path.
mkdir -p /orig
mount -o bind /host /orig || fail "cannot bind-mount the host root"

mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
mkdir -p /host/run/netns /host/run/lock
case $checkout in
  /tmp/* | /run/* | /var/run/*)
    real=$checkout
    case $real in /var/run/*) real=/run/${real#/var/run/} ;; esac
    mkdir -p "/host$real"
    mount -o bind "/orig$real" "/host$real" || fail "cannot show the checkout \"$checkout\" inside the guest"
    ;;
esac
mount -t bpf bpf /host/sys/fs/bpf || fail "cannot mount bpffs"
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /host/sys/kernel/tracing 2>/dev/null

echo /sbin/modprobe >/proc/sys/kernel/modprobe
ip link set lo up
hostname veil-vm

log "root ready after $(cut -d' ' -f1 /proc/uptime) s (kernel $(uname -r))"

env='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=linux LANG=C.UTF-8'
case $mode in
  agent)
    [ -n "$checkout" ] || fail "no veil.checkout= on the kernel command line"
    # shellcheck disable=SC2086
    chroot /host /usr/bin/env -i $env VEIL_CHECKOUT="$checkout" \
      /usr/bin/node "$checkout/tests/vm/harness/guest-agent.mjs"
    # 137 (SIGKILL) is the agent's own way out after a "poweroff" request.
    log "agent ended with status $?"
    ;;
  shell)
    log "root shell in the host's tree (read-only; /tmp and /run are tmpfs); exit to power off"
    # shellcheck disable=SC2086
    setsid cttyhack chroot /host /usr/bin/env -i $env /bin/sh -c 'cd "$1" 2>/dev/null; exec /bin/bash -l' sh "$checkout"
    ;;
  exec)
    [ -n "$checkout" ] || fail "no veil.checkout= on the kernel command line"
    command=$(echo "${exec_b64:-}" | base64 -d) || fail "veil.exec= is not base64"
    [ -n "$command" ] || fail "no veil.exec= on the kernel command line"
    # shellcheck disable=SC2086
    chroot /host /usr/bin/env -i $env /bin/sh -c 'cd "$1" && eval "$2"' sh "$checkout" "$command" </dev/null
    log "command exited with status $?"
    ;;
  *) log "unknown veil.mode \"$mode\"" ;;
esac
sync
poweroff -f
