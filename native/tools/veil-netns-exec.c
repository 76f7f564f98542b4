// veil-netns-exec: run a program inside a named network namespace with a private WireGuard
// UAPI socket directory.
//
//   veil-netns-exec [--netns NS] [--wireguard-dir DIR] -- PROG [ARGS...]
//
// wireguard-go (and `wg`) hard-code /var/run/wireguard for their UAPI sockets. That directory is
// shared by every network namespace of one mount namespace, so two namespaces could not both
// have a device called "wg0". This launcher gives PROG its own mount namespace in which DIR
// (created mode 0700) is bind-mounted over /var/run/wireguard; the agent then reaches the
// socket directly at DIR/NAME.sock, without entering any namespace itself.
//
// Steps, in order:
//   1. setns(CLONE_NEWNET) into NS (a name under /run/netns, or an absolute path such as
//      /proc/PID/ns/net); without --netns the caller's namespace is kept.
//   2. With --wireguard-dir: mkdir DIR 0700 (and enforce 0700), unshare(CLONE_NEWNS), make every
//      mount private (MS_REC|MS_PRIVATE, so nothing propagates back to the host), create
//      /var/run/wireguard if needed and bind-mount DIR over it.
//   3. execvp(PROG, ARGS).
// Command-line equivalent: `ip netns exec NS unshare -m sh -c 'mount --make-rprivate / &&
// mount --bind DIR /var/run/wireguard && exec PROG ARGS...'`.
//
// Exit status: PROG's (the launcher is replaced by it), 125 for a launcher error (usage,
// namespace, mount), 127 when PROG cannot be executed. Errors go to stderr on one line.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define WG_SOCKET_DIR "/var/run/wireguard"
#define EXIT_LAUNCHER 125
#define EXIT_EXEC 127

static void die(int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("veil-netns-exec: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(status);
}

static void usage(void) {
  die(EXIT_LAUNCHER, "Usage: veil-netns-exec [--netns NS] [--wireguard-dir DIR] -- PROG [ARGS...]");
}

static void enter_netns(const char* netns) {
  char path[4096];
  if (netns[0] == '/') {
    if (strlen(netns) >= sizeof(path)) die(EXIT_LAUNCHER, "Namespace path is too long");
    strcpy(path, netns);
  } else {
    if (strchr(netns, '/') != NULL || strcmp(netns, ".") == 0 || strcmp(netns, "..") == 0 ||
        strlen(netns) > 255) {
      die(EXIT_LAUNCHER, "Invalid namespace name \"%s\": use a name under /run/netns or an absolute path", netns);
    }
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(EXIT_LAUNCHER, "Cannot open network namespace \"%s\": %s", netns, strerror(errno));
  if (setns(fd, CLONE_NEWNET) != 0) {
    die(EXIT_LAUNCHER, "Cannot enter network namespace \"%s\": %s", netns, strerror(errno));
  }
  close(fd);
}

static void private_wireguard_dir(const char* dir) {
  if (dir[0] != '/') die(EXIT_LAUNCHER, "WireGuard directory \"%s\" must be an absolute path", dir);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    die(EXIT_LAUNCHER, "Cannot create WireGuard directory \"%s\": %s", dir, strerror(errno));
  }
  struct stat st;
  if (lstat(dir, &st) != 0) die(EXIT_LAUNCHER, "Cannot stat \"%s\": %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) die(EXIT_LAUNCHER, "WireGuard directory \"%s\" is not a directory", dir);
  if (st.st_uid != geteuid()) die(EXIT_LAUNCHER, "WireGuard directory \"%s\" is owned by another user", dir);
  if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) != 0) {
    die(EXIT_LAUNCHER, "Cannot set mode 0700 on \"%s\": %s", dir, strerror(errno));
  }
  if (unshare(CLONE_NEWNS) != 0) die(EXIT_LAUNCHER, "Cannot create a mount namespace: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
    die(EXIT_LAUNCHER, "Cannot make mounts private: %s", strerror(errno));
  }
  // Creating the mount point is visible on the host (it is a plain directory), the mount is not.
  if (mkdir(WG_SOCKET_DIR, 0755) != 0 && errno != EEXIST) {
    die(EXIT_LAUNCHER, "Cannot create %s: %s", WG_SOCKET_DIR, strerror(errno));
  }
  if (mount(dir, WG_SOCKET_DIR, NULL, MS_BIND, NULL) != 0) {
    die(EXIT_LAUNCHER, "Cannot bind-mount \"%s\" over %s: %s", dir, WG_SOCKET_DIR, strerror(errno));
  }
}

int main(int argc, char** argv) {
  const char* netns = NULL;
  const char* wgdir = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (strcmp(argv[i], "--netns") == 0 && i + 1 < argc) {
      netns = argv[++i];
    } else if (strcmp(argv[i], "--wireguard-dir") == 0 && i + 1 < argc) {
      wgdir = argv[++i];
    } else {
      usage();
    }
  }
  if (i >= argc) usage();
  if (netns != NULL && netns[0] != '\0') enter_netns(netns);
  if (wgdir != NULL) private_wireguard_dir(wgdir);
  execvp(argv[i], &argv[i]);
  die(EXIT_EXEC, "Cannot run \"%s\": %s", argv[i], strerror(errno));
  return EXIT_EXEC;
}
