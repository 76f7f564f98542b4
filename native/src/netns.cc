// Named network namespaces and per-namespace sysctls. Every verb runs on a worker thread: the
// thread unshares or enters the namespace and always returns to its own before it finishes
// (WithNetns), so the main thread and other workers never change namespace.
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "js.h"
#include "netlink.h"

namespace veil {
namespace {

constexpr const char* kNetnsDir = "/run/netns";

// A namespace name as iproute2 accepts it: a file name under /run/netns.
std::string CheckName(const std::string& name, const std::string& op) {
  if (name.empty() || name.size() > 255 || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw InvalidArg(op, "Invalid namespace name \"" + name + "\": use 1 to 255 characters without \"/\"");
  }
  return name;
}

NlError SysError(int err, const std::string& op, const std::string& what) {
  return NlError(err, op, what + ": " + strerror(err));
}

// /run/netns exists and is a shared mount point, so namespace mounts made under it propagate to
// every mount namespace (iproute2 does the same: bind-mount the directory on itself once).
void PrepareNetnsDir(const std::string& op) {
  if (mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) {
    throw SysError(errno, op, std::string("Cannot create \"") + kNetnsDir + "\"");
  }
  if (mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
  if (errno != EINVAL) throw SysError(errno, op, std::string("Cannot make \"") + kNetnsDir + "\" a shared mount");
  // Not a mount point yet: bind it on itself, then share it.
  if (mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
    throw SysError(errno, op, std::string("Cannot bind-mount \"") + kNetnsDir + "\" on itself");
  }
  if (mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    throw SysError(errno, op, std::string("Cannot make \"") + kNetnsDir + "\" a shared mount");
  }
}

// `ip netns add NAME`: create the mount point file exclusively, unshare a new network namespace
// on this (worker) thread, bind-mount the thread's namespace onto the file, return the thread to
// its own namespace. On failure nothing is left behind.
void NetnsAddWork(const std::string& name) {
  const std::string op = "netns.add";
  const std::string path = std::string(kNetnsDir) + "/" + name;
  PrepareNetnsDir(op);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST) throw NlError(e, op, "Network namespace \"" + name + "\" already exists");
    throw SysError(e, op, "Cannot create \"" + path + "\"");
  }
  close(fd);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    unlink(path.c_str());
    throw SysError(e, op, "Cannot open the thread's own network namespace");
  }
  int err = 0;
  std::string what;
  bool entered = false;
  if (unshare(CLONE_NEWNET) != 0) {
    err = errno;
    what = "Cannot create a network namespace";
  } else {
    entered = true;
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
      what = "Cannot bind-mount the new network namespace on \"" + path + "\"";
    }
  }
  if (entered && setns(self, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "veil: cannot return worker thread to its network namespace: %s\n", strerror(errno));
    std::abort();
  }
  close(self);
  if (err != 0) {
    unlink(path.c_str());
    throw SysError(err, op, what);
  }
}

// `ip netns del NAME`: detach the bind mount (the namespace lives on while a process is in it)
// and remove the file. ENOENT when it does not exist.
void NetnsDeleteWork(const std::string& name) {
  const std::string op = "netns.delete";
  const std::string path = std::string(kNetnsDir) + "/" + name;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT) throw NlError(e, op, "Network namespace \"" + name + "\" does not exist");
    throw SysError(e, op, "Cannot stat \"" + path + "\"");
  }
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    throw SysError(errno, op, "Cannot unmount \"" + path + "\"");
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw SysError(errno, op, "Cannot remove \"" + path + "\"");
  }
}

// A sysctl key such as "net.ipv4.ip_forward": segments of [A-Za-z0-9_-] (device names may hold
// more, but the lab needs only these), separated by dots; becomes /proc/sys/net/ipv4/ip_forward.
std::string SysctlPath(const std::string& key, const std::string& op) {
  if (key.empty() || key.size() > 200) throw InvalidArg(op, "Invalid sysctl key \"" + key + "\"");
  std::string path = "/proc/sys/";
  bool segmentStart = true;
  for (char c : key) {
    if (c == '.') {
      if (segmentStart) throw InvalidArg(op, "Invalid sysctl key \"" + key + "\": empty segment");
      path += '/';
      segmentStart = true;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) throw InvalidArg(op, "Invalid sysctl key \"" + key + "\": unexpected character");
    path += c;
    segmentStart = false;
  }
  if (segmentStart) throw InvalidArg(op, "Invalid sysctl key \"" + key + "\": empty segment");
  return path;
}

// `ip netns exec NS sysctl -w KEY=VALUE`. /proc/sys/net belongs to the network namespace of the
// task that opens the file, so the file is opened while the thread is inside NS.
void SysctlSetWork(const std::string& netns, const std::string& path, const std::string& key, const std::string& value) {
  const std::string op = "sysctl.set";
  WithNetns(netns, [&]() {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw SysError(errno, op, "Cannot open sysctl \"" + key + "\"");
    ssize_t n = write(fd, value.data(), value.size());
    int e = errno;
    close(fd);
    if (n < 0) throw SysError(e, op, "Cannot write \"" + value + "\" to sysctl \"" + key + "\"");
    if (static_cast<size_t>(n) != value.size()) throw NlError(EIO, op, "Short write to sysctl \"" + key + "\"");
  });
}

std::string SysctlGetWork(const std::string& netns, const std::string& path, const std::string& key) {
  const std::string op = "sysctl.get";
  std::string out;
  WithNetns(netns, [&]() {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw SysError(errno, op, "Cannot open sysctl \"" + key + "\"");
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        throw SysError(e, op, "Cannot read sysctl \"" + key + "\"");
      }
      if (n == 0 || out.size() > 65536) break;
      out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  });
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const std::string& op, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw InvalidArg(op, std::string("Expected ") + what + " as a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// netnsAdd(name): Promise<void>
Napi::Value NetnsAdd(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    std::string name = CheckName(ArgString(info, 0, "netns.add", "a namespace name"), "netns.add");
    return RunAsync(info.Env(), [name]() { NetnsAddWork(name); });
  });
}

// netnsDelete(name): Promise<void>
Napi::Value NetnsDelete(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    std::string name = CheckName(ArgString(info, 0, "netns.delete", "a namespace name"), "netns.delete");
    return RunAsync(info.Env(), [name]() { NetnsDeleteWork(name); });
  });
}

// sysctlSet(key, value, { netns? }): Promise<void>
Napi::Value SysctlSet(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "sysctl.set";
    std::string key = ArgString(info, 0, op, "a sysctl key");
    std::string value = ArgString(info, 1, op, "a sysctl value");
    if (value.empty() || value.size() > 4096 || value.find('\0') != std::string::npos) {
      throw InvalidArg(op, "Invalid value for sysctl \"" + key + "\"");
    }
    std::string path = SysctlPath(key, op);
    std::string netns = GetNetns(info, 2, op);
    return RunAsync(info.Env(), [netns, path, key, value]() { SysctlSetWork(netns, path, key, value); });
  });
}

// sysctlGet(key, { netns? }): Promise<string>
Napi::Value SysctlGet(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "sysctl.get";
    std::string key = ArgString(info, 0, op, "a sysctl key");
    std::string path = SysctlPath(key, op);
    std::string netns = GetNetns(info, 1, op);
    auto result = std::make_shared<std::string>();
    return RunAsync(
        info.Env(), [netns, path, key, result]() { *result = SysctlGetWork(netns, path, key); },
        [result](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *result); });
  });
}

}  // namespace

void RegisterNetns(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "netnsAdd", NetnsAdd);
  Export(env, exports, "netnsDelete", NetnsDelete);
  Export(env, exports, "sysctlSet", SysctlSet);
  Export(env, exports, "sysctlGet", SysctlGet);
}

}  // namespace veil
