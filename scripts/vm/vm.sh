#!/usr/bin/env bash
# The VM test tier's boot machinery: one place that knows how the guest is built and started.
# Used by tests/vm/harness/global-setup.ts and by engineers debugging by hand.
#
#   vm.sh kernel              prints the guest kernel release (newest Debian kernel in /boot that
#                             is not the running kernel)
#   vm.sh initramfs           builds (or reuses) the guest initramfs; prints its path
#   vm.sh run RPC_SOCK        boots the guest (serial console on stdout) with the RPC agent on a
#                             virtio-serial port whose host side is the unix socket RPC_SOCK
#   vm.sh shell               boots the guest with a root shell on this terminal instead of the
#                             agent (Ctrl-A X quits qemu; `poweroff -f` inside ends it cleanly)
#   vm.sh exec COMMAND        boots the guest, runs `sh -c COMMAND` as root in the checkout (output
#                             on this terminal and in .vm/exec-console.log), powers off and exits
#                             with the command's status (scripts/lab.sh runs the IPsec lab so)
#
# The initramfs holds static busybox and the few modules needed to mount the host's root over
# 9p; it is cached in .vm/ (ignored by git) under a key made of the kernel release and the hash
# of this script and the guest's init script, so a change to either rebuilds it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$ROOT/.vm"
INIT_SCRIPT="$ROOT/tests/vm/harness/guest-init.sh"
# Modules the initramfs loads itself; everything else autoloads later through the host's modprobe.
MODULES=(virtio_pci virtio_console 9pnet_virtio 9p)

die() {
  echo "vm.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "\"$1\" is missing: run \"bash scripts/setup.sh\" (it installs $2)"
}

# Newest /boot/vmlinuz-* that a Debian package owns, has its modules installed, and is not the
# kernel this machine runs (the point of the VM is a different, module-enabled kernel).
guest_kernel() {
  local running v best=
  running=$(uname -r)
  for f in /boot/vmlinuz-*; do
    [[ -e $f ]] || continue
    v=${f#/boot/vmlinuz-}
    [[ $v != "$running" && -f /lib/modules/$v/modules.dep ]] || continue
    dpkg-query -S "$f" >/dev/null 2>&1 || continue
    best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n1)
  done
  [[ -n $best ]] || die "no Debian kernel in /boot besides the running one ($running): run \"bash scripts/setup.sh\" (it installs linux-image-amd64)"
  echo "$best"
}

# Copies one module into the initramfs, decompressing .ko.xz / .ko.zst (busybox insmod reads
# plain ELF only).
copy_module() {
  local src=$1 dir=$2 name
  name=$(basename "$src")
  case $src in
    *.ko.xz) xz -dc "$src" >"$dir/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$src" >"$dir/${name%.zst}"; name=${name%.zst} ;;
    *.ko.gz) gzip -dc "$src" >"$dir/${name%.gz}"; name=${name%.gz} ;;
    *.ko) cp "$src" "$dir/$name" ;;
    *) die "unexpected module file \"$src\"" ;;
  esac
  echo "$name"
}

build_initramfs() {
  local kver=$1 out=$2 work mod path name
  need cpio cpio
  need modprobe kmod
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 ||
    die "/bin/busybox is missing or not static: run \"bash scripts/setup.sh\" (it installs busybox-static)"
  work=$(mktemp -d)
  mkdir -p "$work"/{bin,sbin,proc,sys,dev,host,tmp,lib/modules}
  cp /bin/busybox "$work/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$work/bin/$applet"
  done
  # Dependencies in load order, from the host's kmod; "builtin" lines need nothing.
  declare -A seen=()
  : >"$work/lib/modules/load-order"
  for mod in "${MODULES[@]}"; do
    while read -r kind path _; do
      [[ $kind == insmod ]] || continue
      [[ -z ${seen[$path]:-} ]] || continue
      seen[$path]=1
      name=$(copy_module "$path" "$work/lib/modules")
      echo "$name" >>"$work/lib/modules/load-order"
    done < <(modprobe -S "$kver" --show-depends "$mod" ||
      die "module \"$mod\" not found for kernel $kver")
  done
  # The kernel runs /sbin/modprobe from the initramfs root (not from init's chroot): hand module
  # requests to the host's kmod, which reads /lib/modules/<ver> of the mounted host root.
  cat >"$work/sbin/modprobe" <<'WRAPPER'
#!/bin/sh
exec /bin/chroot /host /sbin/modprobe "$@"
WRAPPER
  chmod 755 "$work/sbin/modprobe"
  install -m 755 "$INIT_SCRIPT" "$work/init"
  (cd "$work" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
  rm -rf "$work"
}

initramfs() {
  local kver key out
  kver=$(guest_kernel)
  key=$(cat "$0" "$INIT_SCRIPT" | sha256sum | cut -c1-16)
  out="$CACHE/initramfs-$kver-$key.cpio"
  if [[ ! -s $out ]]; then
    mkdir -p "$CACHE"
    # Images of this kernel under another key are stale (the scripts changed): drop them.
    for f in "$CACHE/initramfs-$kver-"*.cpio; do
      [[ $f == "$out" ]] || rm -f "$f"
    done
    build_initramfs "$kver" "$out"
  fi
  echo "$out"
}

# Runs qemu in the foreground (exec), so the caller's child process is qemu itself; in exec mode
# qemu runs as a child instead, and the command's exit status is read from the console.
boot() {
  local mode=$1 rpc=$2 command=${3:-} kver image extra=
  need qemu-system-x86_64 qemu-system-x86
  kver=$(guest_kernel)
  image=$(initramfs)
  if [[ $mode == exec ]]; then
    # Base64 keeps the command one word of the kernel command line (at most 2048 bytes in all).
    extra=" veil.exec=$(printf '%s' "$command" | base64 -w0)"
    ((${#extra} < 1500)) || die "the command is too long for the kernel command line: put it in a script in the checkout"
  fi
  local args=(
    -accel tcg -cpu max -smp 2 -m 1024 -nographic -no-reboot
    # No network device at all: the host talks to the guest over virtio-serial only.
    -nic none
    -kernel "/boot/vmlinuz-$kver" -initrd "$image"
    -append "console=ttyS0 panic=-1 quiet loglevel=4 veil.mode=$mode veil.checkout=$ROOT$extra"
    -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"
    -device virtio-serial-pci
  )
  if [[ -n $rpc ]]; then
    args+=(
      -chardev "socket,path=$rpc,server=on,wait=off,id=veilrpc"
      -device "virtserialport,chardev=veilrpc,name=veil.rpc"
    )
  fi
  if [[ $mode == exec ]]; then
    local log="$CACHE/exec-console.log" status
    local pdeath=()
    command -v setpriv >/dev/null 2>&1 && pdeath=(setpriv --pdeathsig KILL --)
    # No terminal input: Ctrl-C stops qemu (and everything in the guest) instead of going to it.
    "${pdeath[@]}" qemu-system-x86_64 "${args[@]}" </dev/null | tee "$log" | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' || true
    status=$(tr -d '\r' <"$log" | sed -n 's/^veil-vm: command exited with status \([0-9]*\)$/\1/p' | tail -n1)
    [[ -n $status ]] || die "the guest did not report the command's exit status (console log \"$log\")"
    return "$status"
  fi
  # pdeathsig: qemu dies with the process that started it, so a killed test runner leaves no VM.
  if [[ $mode == agent ]] && command -v setpriv >/dev/null 2>&1; then
    exec setpriv --pdeathsig KILL -- qemu-system-x86_64 "${args[@]}"
  fi
  exec qemu-system-x86_64 "${args[@]}"
}

case ${1:-} in
  kernel) guest_kernel ;;
  initramfs) initramfs ;;
  run)
    [[ -n ${2:-} ]] || die "usage: vm.sh run RPC_SOCKET"
    boot agent "$2"
    ;;
  shell) boot shell "" ;;
  exec)
    [[ -n ${2:-} ]] || die "usage: vm.sh exec COMMAND"
    boot exec "" "$2"
    ;;
  *) die "usage: vm.sh kernel|initramfs|run RPC_SOCKET|shell|exec COMMAND" ;;
esac
