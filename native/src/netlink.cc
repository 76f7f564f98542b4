#include "netlink.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace veil {

NlError::NlError(int err_, std::string op_, std::string detail_, std::string extack_, int index_)
    : std::runtime_error(detail_), err(err_), op(std::move(op_)), detail(std::move(detail_)),
      extack(std::move(extack_)), index(index_) {}

const char* ErrnoName(int err) {
  switch (err) {
    case kErrDumpInterrupted: return "EDUMPINTR";
    case kErrMalformedReply: return "EMALFORMED";
  }
  const char* name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

// ---------------------------------------------------------------------------------------------
// MsgBuilder

MsgBuilder::MsgBuilder(uint16_t type, uint16_t flags) {
  buf_.reserve(256);
  buf_.resize(NLMSG_HDRLEN);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf_.data());
  std::memset(nlh, 0, NLMSG_HDRLEN);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
}

size_t MsgBuilder::Reserve(size_t len) {
  size_t off = buf_.size();
  buf_.resize(off + len, 0);
  return off;
}

void MsgBuilder::Put(uint16_t type, const void* data, size_t len) {
  size_t total = NLA_HDRLEN + len;
  if (total > 0xffff) {
    throw NlError(E2BIG, "encode", "Attribute " + std::to_string(type) + " of " +
                                        std::to_string(len) + " bytes exceeds the 65535-byte limit");
  }
  size_t off = Reserve(NLA_ALIGN(total));
  auto* nla = reinterpret_cast<nlattr*>(buf_.data() + off);
  nla->nla_len = static_cast<uint16_t>(total);
  nla->nla_type = type;
  if (len) std::memcpy(buf_.data() + off + NLA_HDRLEN, data, len);
}

MsgBuilder::Nest::Nest(MsgBuilder& b, uint16_t type) : b_(b), off_(b.Reserve(NLA_HDRLEN)) {
  auto* nla = reinterpret_cast<nlattr*>(b_.buf_.data() + off_);
  nla->nla_type = type | NLA_F_NESTED;
}

MsgBuilder::Nest::~Nest() {
  size_t len = b_.buf_.size() - off_;
  auto* nla = reinterpret_cast<nlattr*>(b_.buf_.data() + off_);
  // A nest over 64 KiB cannot be expressed; encoders split requests well below this, and
  // Finish() rejects an oversized message, so a truncated length never reaches the kernel.
  nla->nla_len = len > 0xffff ? 0xffff : static_cast<uint16_t>(len);
}

uint16_t MsgBuilder::Type() const {
  return reinterpret_cast<const nlmsghdr*>(buf_.data())->nlmsg_type;
}

void MsgBuilder::SetFlags(uint16_t flags) {
  reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_flags = flags;
}

std::vector<uint8_t>& MsgBuilder::Finish() {
  if (buf_.size() > 0xffff * 16) {
    throw NlError(E2BIG, "encode", "Netlink message of " + std::to_string(buf_.size()) +
                                       " bytes is too large; split the request");
  }
  reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
  return buf_;
}

// ---------------------------------------------------------------------------------------------
// Attributes

uint8_t Attr::U8() const { return len >= 1 ? data[0] : 0; }
uint16_t Attr::U16() const {
  uint16_t v = 0;
  if (len >= 2) std::memcpy(&v, data, 2);
  return v;
}
uint32_t Attr::U32() const {
  uint32_t v = 0;
  if (len >= 4) std::memcpy(&v, data, 4);
  return v;
}
uint64_t Attr::U64() const {
  uint64_t v = 0;
  if (len >= 8) std::memcpy(&v, data, 8);
  return v;
}
std::string Attr::Str() const {
  size_t n = 0;
  while (n < len && data[n] != 0) n++;
  return std::string(reinterpret_cast<const char*>(data), n);
}

bool ForEachAttr(const uint8_t* data, size_t len, const std::function<void(const Attr&)>& fn) {
  size_t off = 0;
  while (off + NLA_HDRLEN <= len) {
    nlattr nla;
    std::memcpy(&nla, data + off, sizeof(nla));
    if (nla.nla_len < NLA_HDRLEN || off + nla.nla_len > len) return false;
    Attr a{static_cast<uint16_t>(nla.nla_type & NLA_TYPE_MASK), data + off + NLA_HDRLEN,
           static_cast<size_t>(nla.nla_len - NLA_HDRLEN)};
    fn(a);
    off += NLA_ALIGN(nla.nla_len);
  }
  // Trailing bytes shorter than an attribute header are padding only when zero-length.
  return off >= len || len - off < NLA_HDRLEN;
}

bool ForEachMsgAttr(const nlmsghdr* nlh, size_t hdrlen, const std::function<void(const Attr&)>& fn) {
  if (nlh->nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen)) {
    throw NlError(kErrMalformedReply, "parse", "Netlink message of type " +
                                                   std::to_string(nlh->nlmsg_type) +
                                                   " is shorter than its family header");
  }
  const uint8_t* base = reinterpret_cast<const uint8_t*>(nlh) + NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen);
  size_t len = nlh->nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(hdrlen);
  return ForEachAttr(base, len, fn);
}

// ---------------------------------------------------------------------------------------------
// Namespaces

int OpenNetns(const std::string& netns) {
  std::string path = netns;
  if (netns.empty() || netns[0] != '/') {
    if (netns.find('/') != std::string::npos || netns == "." || netns == "..") {
      errno = EINVAL;
      return -1;
    }
    path = "/run/netns/" + netns;
  }
  return open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

void WithNetns(const std::string& netns, const std::function<void()>& fn) {
  if (netns.empty()) {
    fn();
    return;
  }
  int target = OpenNetns(netns);
  if (target < 0) {
    int e = errno;
    throw NlError(e, "netns", "Cannot open network namespace \"" + netns + "\": " + strerror(e));
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    close(target);
    throw NlError(e, "netns", std::string("Cannot open the thread's own network namespace: ") + strerror(e));
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int e = errno;
    close(target);
    close(self);
    throw NlError(e, "netns", "Cannot enter network namespace \"" + netns + "\": " + strerror(e));
  }
  close(target);
  auto restore = [&]() {
    if (setns(self, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "veil: cannot return worker thread to its network namespace: %s\n",
                   strerror(errno));
      std::abort();
    }
    close(self);
  };
  try {
    fn();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

// ---------------------------------------------------------------------------------------------
// Socket

Socket::Socket(int protocol, const std::string& netns) {
  int err = 0;
  WithNetns(netns, [&]() {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) err = errno;
  });
  if (fd_ < 0) {
    throw NlError(err, "socket", std::string("Cannot open netlink socket: ") + strerror(err));
  }
  int one = 1;
  setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  // Batches pipeline many requests; give the kernel room for their acks.
  int rcv = 4 << 20, snd = 4 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
  setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    close(fd_);
    fd_ = -1;
    throw NlError(e, "socket", std::string("Cannot bind netlink socket: ") + strerror(e));
  }
  socklen_t salen = sizeof(sa);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &salen);
  portid_ = sa.nl_pid;
  rbuf_.resize(1 << 17);
}

Socket::~Socket() {
  if (fd_ >= 0) close(fd_);
}

void Socket::Send(const uint8_t* data, size_t len, const std::string& op) {
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    if (n >= 0) return;
    if (errno == EINTR) continue;
    int e = errno;
    throw NlError(e, op, std::string("Cannot send netlink request: ") + strerror(e));
  }
}

size_t Socket::Recv(const std::string& op) {
  for (;;) {
    // Peek the size first so a large dump message never truncates.
    ssize_t n = recv(fd_, rbuf_.data(), 0, MSG_PEEK | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      throw NlError(e, op, std::string("Cannot receive netlink reply: ") + strerror(e));
    }
    if (static_cast<size_t>(n) > rbuf_.size()) rbuf_.resize(static_cast<size_t>(n));
    n = recv(fd_, rbuf_.data(), rbuf_.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      throw NlError(e, op, std::string("Cannot receive netlink reply: ") + strerror(e));
    }
    return static_cast<size_t>(n);
  }
}

NlError Socket::ErrorFromAck(const nlmsghdr* nlh, const std::string& op, int index) {
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
    return NlError(kErrMalformedReply, op, "Truncated netlink error message");
  }
  const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
  int err = -e->error;
  std::string extack;
  if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
    // With NETLINK_CAP_ACK the original request is not echoed back, so the TLVs follow the
    // nlmsgerr header directly (unless the kernel did echo it: NLM_F_CAPPED unset).
    size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
    if (off < nlh->nlmsg_len) {
      ForEachAttr(reinterpret_cast<const uint8_t*>(nlh) + off, nlh->nlmsg_len - off,
                  [&](const Attr& a) {
                    if (a.type == NLMSGERR_ATTR_MSG) extack = a.Str();
                  });
    }
  }
  std::string detail = strerror(err);
  return NlError(err, op, detail, extack, index);
}

uint32_t Socket::SendOne(MsgBuilder& msg, uint16_t flags, const std::string& op) {
  auto& bytes = msg.Finish();
  auto* nlh = reinterpret_cast<nlmsghdr*>(bytes.data());
  nlh->nlmsg_flags |= NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = NextSeq();
  nlh->nlmsg_pid = 0;
  uint32_t seq = nlh->nlmsg_seq;
  Send(bytes.data(), bytes.size(), op);
  return seq;
}

void Socket::Request(MsgBuilder& msg, const std::string& op) {
  RequestReplies(msg, op, [](const nlmsghdr*) {});
}

void Socket::RequestReplies(MsgBuilder& msg, const std::string& op,
                            const std::function<void(const nlmsghdr*)>& on_reply) {
  uint32_t seq = SendOne(msg, NLM_F_ACK, op);
  for (;;) {
    int n = static_cast<int>(Recv(op));
    for (auto* r = reinterpret_cast<nlmsghdr*>(rbuf_.data()); NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != seq) continue;  // stale reply of an earlier, abandoned request
      if (r->nlmsg_type == NLMSG_ERROR) {
        NlError e = ErrorFromAck(r, op, -1);
        if (e.err != 0) throw e;
        return;
      }
      if (r->nlmsg_type == NLMSG_DONE) return;
      on_reply(r);
    }
  }
}

void Socket::Dump(MsgBuilder& msg, const std::string& op,
                  const std::function<void(const nlmsghdr*)>& fn) {
  uint32_t seq = SendOne(msg, NLM_F_DUMP, op);
  bool interrupted = false;
  for (;;) {
    int n = static_cast<int>(Recv(op));
    for (auto* r = reinterpret_cast<nlmsghdr*>(rbuf_.data()); NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != seq) continue;
      if (r->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (r->nlmsg_type == NLMSG_DONE) {
        if (interrupted) {
          throw NlError(kErrDumpInterrupted, op,
                        "The kernel's object set changed during the dump; retry");
        }
        return;
      }
      if (r->nlmsg_type == NLMSG_ERROR) {
        NlError e = ErrorFromAck(r, op, -1);
        if (e.err != 0) throw e;
        return;
      }
      fn(r);
    }
  }
}

int Socket::Batch(std::vector<MsgBuilder>& msgs, const std::string& op, bool stop_on_error,
                  std::vector<bool>* applied, NlError* error) {
  applied->assign(msgs.size(), false);
  if (msgs.empty()) return -1;
  // Pipeline window: send up to kWindowBytes of requests, then drain their acks. Keeping the
  // window well under the socket buffers means acks never overflow the receive queue.
  constexpr size_t kWindowBytes = 192 * 1024;
  const uint32_t base = seq_ + 1;
  seq_ += static_cast<uint32_t>(msgs.size());
  int first_failed = -1;
  std::vector<uint8_t> out;
  out.reserve(kWindowBytes + 4096);
  constexpr unsigned kSlots = 256;
  constexpr size_t kSlotBytes = 8192;  // an ack with extended-ack TLVs is far smaller
  std::vector<uint8_t> slots(kSlots * kSlotBytes);
  std::vector<iovec> iovs(kSlots);
  std::vector<mmsghdr> hdrs(kSlots);
  for (unsigned i = 0; i < kSlots; i++) {
    iovs[i] = {slots.data() + i * kSlotBytes, kSlotBytes};
    hdrs[i] = {};
    hdrs[i].msg_hdr.msg_iov = &iovs[i];
    hdrs[i].msg_hdr.msg_iovlen = 1;
  }
  std::vector<uint8_t> failed;
  size_t next = 0;
  // Requests may carry key material (XFRM states): wipe every window's copy once it is sent.
  struct WipeOnExit {
    std::vector<uint8_t>& v;
    ~WipeOnExit() { explicit_bzero(v.data(), v.size()); }
  } wipe_out{out};
  while (next < msgs.size()) {
    explicit_bzero(out.data(), out.size());
    out.clear();
    size_t begin = next;
    size_t end = begin;
    for (size_t bytes = 0; end < msgs.size() && (end == begin || bytes + msgs[end].Size() <= kWindowBytes); end++) {
      bytes += msgs[end].Size();
    }
    for (; next < end; next++) {
      auto& b = msgs[next].Finish();
      auto* nlh = reinterpret_cast<nlmsghdr*>(b.data());
      // Only the window's last request asks for an ack (flags may remain from an earlier send).
      nlh->nlmsg_flags = static_cast<uint16_t>((nlh->nlmsg_flags & ~NLM_F_ACK) | NLM_F_REQUEST |
                                               (next + 1 == end ? NLM_F_ACK : 0));
      nlh->nlmsg_seq = base + static_cast<uint32_t>(next);
      out.insert(out.end(), b.begin(), b.end());
    }
    Send(out.data(), out.size(), op);
    failed.assign(end - begin, 0);
    const uint32_t fence = base + static_cast<uint32_t>(end - 1);
    bool fenced = false;
    while (!fenced) {
      // Error messages and the fence's ack arrive one datagram each: take up to kSlots per
      // system call (recvmmsg).
      int got = recvmmsg(fd_, hdrs.data(), kSlots, MSG_WAITFORONE, nullptr);
      if (got < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        throw NlError(e, op, std::string("Cannot receive netlink acks: ") + strerror(e));
      }
      for (int d = 0; d < got; d++) {
        int n = static_cast<int>(hdrs[d].msg_len);
        auto* start = reinterpret_cast<nlmsghdr*>(slots.data() + static_cast<size_t>(d) * kSlotBytes);
        for (auto* r = start; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
          if (r->nlmsg_type != NLMSG_ERROR) continue;
          uint32_t s = r->nlmsg_seq;
          if (s < base + begin || s >= base + end) continue;
          size_t idx = s - base;
          if (s == fence) fenced = true;
          if (r->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr) &&
              reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r))->error == 0) {
            continue;
          }
          NlError e = ErrorFromAck(r, op, static_cast<int>(idx));
          if (e.err == 0) continue;
          failed[idx - begin] = 1;
          if (first_failed < 0 || static_cast<int>(idx) < first_failed) {
            first_failed = static_cast<int>(idx);
            *error = e;
          }
        }
      }
    }
    for (size_t i = begin; i < end; i++) (*applied)[i] = !failed[i - begin];
    if (first_failed >= 0 && stop_on_error) break;
  }
  return first_failed;
}

uint16_t Socket::ResolveGenlFamily(const std::string& name) {
  MsgBuilder m(GENL_ID_CTRL, 0);
  genlmsghdr g{};
  g.cmd = CTRL_CMD_GETFAMILY;
  g.version = 1;
  m.Header(g);
  m.PutStr(CTRL_ATTR_FAMILY_NAME, name);
  uint16_t id = 0;
  try {
    RequestReplies(m, "genl.resolve", [&](const nlmsghdr* r) {
      ForEachMsgAttr(r, GENL_HDRLEN, [&](const Attr& a) {
        if (a.type == CTRL_ATTR_FAMILY_ID) id = a.U16();
      });
    });
  } catch (NlError& e) {
    if (e.err == ENOENT) {
      throw NlError(ENOENT, "genl.resolve",
                    "Generic netlink family \"" + name + "\" is not available in this kernel",
                    e.extack);
    }
    throw;
  }
  if (id == 0) {
    throw NlError(kErrMalformedReply, "genl.resolve", "Kernel reply for family \"" + name + "\" had no id");
  }
  return id;
}

}  // namespace veil
