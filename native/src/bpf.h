// eBPF through libbpf: loading objects (with pinned, re-used maps), map operations (single and
// batched), BPF_PROG_TEST_RUN, BTF struct layouts (bpf.cc); attaching tc programs with tcx or
// clsact + cls_bpf (bpf-attach.cc); ring-buffer readers (bpf-ringbuf.cc).
#pragma once

#include <napi.h>

#include <string>

#include "netlink.h"

namespace veil {

// Adds the bpf family's exports to the addon's export table.
void RegisterBpf(Napi::Env env, Napi::Object exports);
void RegisterBpfAttach(Napi::Env env, Napi::Object exports);
void RegisterBpfRingbuf(Napi::Env env, Napi::Object exports);

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (mount(2), not a shell), creates
// `dir` (and its parents) and checks that it lives on a bpf filesystem. Throws NlError naming the
// directory and the fix.
void EnsureBpffsDir(const std::string& dir, const std::string& op);

// An NlError for a failed bpf()/libbpf call: `ret` is the negative error libbpf returned (libbpf's
// own error numbers above 4000 become ENOEXEC or EINVAL with libbpf's text), `what` says what was
// attempted.
NlError BpfError(int ret, const std::string& op, const std::string& what);

// Owns a file descriptor; closes it on destruction.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd();
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  OwnedFd& operator=(OwnedFd&& o) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace veil
