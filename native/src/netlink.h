// Netlink core shared by every family: message builder, attribute parser, socket with
// extended acks and pipelined batches, and network-namespace targeting.
//
// Nothing here touches N-API: worker threads use it freely. JS conversion lives in js.h.
#pragma once

#include <linux/netlink.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace veil {

// A failed netlink (or system) operation. `err` is a positive errno value; `extack` is the
// kernel's extended-ack message when it sent one; `index` is the position of the failing object
// in a batch (-1 when not a batch).
class NlError : public std::runtime_error {
 public:
  NlError(int err, std::string op, std::string detail, std::string extack = "", int index = -1);
  int err;
  std::string op;
  std::string detail;
  std::string extack;
  int index;
};

// Synthetic error numbers (positive, above the kernel's range) for conditions that are not an
// errno: an interrupted dump and a malformed kernel reply.
constexpr int kErrDumpInterrupted = 100001;
constexpr int kErrMalformedReply = 100002;

// A kernel reply that does not parse: NlError(kErrMalformedReply) for operation `op`.
inline NlError MalformedReply(const std::string& op, const std::string& what) {
  return NlError(kErrMalformedReply, op, what);
}

// Name of an errno ("EEXIST"), or of a synthetic error ("EDUMPINTR").
const char* ErrnoName(int err);

// ---------------------------------------------------------------------------------------------
// Message builder. Appends to a byte vector; every Put is aligned to NLA_ALIGNTO and checks the
// attribute's 16-bit length limit.
class MsgBuilder {
 public:
  MsgBuilder(uint16_t type, uint16_t flags);

  // Appends a fixed family header (ifinfomsg, rtmsg, genlmsghdr, xfrm_usersa_info, ...).
  template <typename T>
  T* Header(const T& value) {
    size_t off = Reserve(NLMSG_ALIGN(sizeof(T)));
    std::memcpy(buf_.data() + off, &value, sizeof(T));
    return reinterpret_cast<T*>(buf_.data() + off);
  }

  void Put(uint16_t type, const void* data, size_t len);
  void PutU8(uint16_t type, uint8_t v) { Put(type, &v, 1); }
  void PutU16(uint16_t type, uint16_t v) { Put(type, &v, 2); }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, 4); }
  void PutU64(uint16_t type, uint64_t v) { Put(type, &v, 8); }
  void PutS32(uint16_t type, int32_t v) { Put(type, &v, 4); }
  void PutFlag(uint16_t type) { Put(type, nullptr, 0); }
  void PutStr(uint16_t type, const std::string& s) { Put(type, s.c_str(), s.size() + 1); }
  template <typename T>
  void PutStruct(uint16_t type, const T& v) { Put(type, &v, sizeof(T)); }

  // RAII guard for a nested attribute: closes (fixes the length of) the nest on destruction.
  class Nest {
   public:
    Nest(MsgBuilder& b, uint16_t type);
    ~Nest();
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    MsgBuilder& b_;
    size_t off_;
  };

  size_t Size() const { return buf_.size(); }
  uint16_t Type() const;
  void SetFlags(uint16_t flags);
  // The finished message (nlmsg_len set). Sequence and port id are set by the socket.
  std::vector<uint8_t>& Finish();
  const std::vector<uint8_t>& Bytes() const { return buf_; }

 private:
  size_t Reserve(size_t len);
  std::vector<uint8_t> buf_;
};

// ---------------------------------------------------------------------------------------------
// Attribute iteration over [data, data+len). Validates every length; stops at the first
// truncated attribute and records it in `malformed`.
struct Attr {
  uint16_t type;  // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
  const uint8_t* data;
  size_t len;

  uint8_t U8() const;
  uint16_t U16() const;
  uint32_t U32() const;
  uint64_t U64() const;
  int32_t S32() const { return static_cast<int32_t>(U32()); }
  std::string Str() const;  // up to the first NUL
  template <typename T>
  bool As(T* out) const {
    if (len < sizeof(T)) return false;
    std::memcpy(out, data, sizeof(T));
    return true;
  }
};

// Calls fn for every attribute. Returns false when the buffer holds a truncated or
// oversized attribute (the well-formed ones before it were still passed to fn).
bool ForEachAttr(const uint8_t* data, size_t len, const std::function<void(const Attr&)>& fn);

// Attributes of a message after its fixed family header of `hdrlen` bytes. Throws
// NlError(kErrMalformedReply) when the header does not fit.
bool ForEachMsgAttr(const nlmsghdr* nlh, size_t hdrlen, const std::function<void(const Attr&)>& fn);

// ---------------------------------------------------------------------------------------------
// A netlink socket of one protocol, opened in a network namespace. The calling thread enters the
// namespace only for the socket() call and returns to its own namespace before the constructor
// returns (the socket stays bound to the namespace it was created in).
class Socket {
 public:
  // netns: "" for the caller's namespace, a name (resolved under /run/netns) or an absolute path
  // to a namespace file (/proc/PID/ns/net).
  Socket(int protocol, const std::string& netns);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }

  // Sends one request with NLM_F_ACK and waits for its ack. Throws NlError on a kernel error,
  // carrying the extended-ack message.
  void Request(MsgBuilder& msg, const std::string& op);

  // Sends one request and collects every reply message (not dumps) until the ack; for requests
  // that answer with data, like WireGuard's or XFRM's get.
  void RequestReplies(MsgBuilder& msg, const std::string& op,
                      const std::function<void(const nlmsghdr*)>& on_reply);

  // Dump request: calls fn for every message until NLMSG_DONE. Throws
  // NlError(kErrDumpInterrupted) when the kernel flags NLM_F_DUMP_INTR (the caller retries).
  void Dump(MsgBuilder& msg, const std::string& op, const std::function<void(const nlmsghdr*)>& fn);

  // Sends many independent requests pipelined (many per sendmsg) and collects their outcome.
  // The kernel reports an error for every failing request whether or not it asked for an ack,
  // and handles a socket's requests in order; so only the last request of each window carries
  // NLM_F_ACK, and its ack proves every earlier request of the window without an error message
  // succeeded (one ack per window instead of one per request, the bulk of the cost).
  // Returns the index of the first failed request and fills `error`, or -1 when all succeeded.
  // With stop_on_error, no request after the first failure's window is sent; requests already
  // in flight still complete and are reported through `applied`.
  // `applied[i]` is set true for every request the kernel processed without error.
  int Batch(std::vector<MsgBuilder>& msgs, const std::string& op, bool stop_on_error,
            std::vector<bool>* applied, NlError* error);

  // Resolves a generic netlink family id by name (CTRL_CMD_GETFAMILY). Throws ENOENT-style
  // NlError when the family does not exist (module not loaded / kernel lacks it).
  uint16_t ResolveGenlFamily(const std::string& name);

 private:
  uint32_t NextSeq() { return ++seq_; }
  // Finishes one request, flags it NLM_F_REQUEST | flags with the next sequence number (port id
  // 0), sends it and returns that sequence number.
  uint32_t SendOne(MsgBuilder& msg, uint16_t flags, const std::string& op);
  void Send(const uint8_t* data, size_t len, const std::string& op);
  // Receives one datagram into rbuf_; returns its length.
  size_t Recv(const std::string& op);
  NlError ErrorFromAck(const nlmsghdr* nlh, const std::string& op, int index);

  int fd_ = -1;
  uint32_t seq_ = 0;
  uint32_t portid_ = 0;
  std::vector<uint8_t> rbuf_;
};

// Opens a namespace file descriptor for `netns` (name under /run/netns or absolute path).
// Returns -1 with errno set on failure.
int OpenNetns(const std::string& netns);

// Runs fn with the calling thread inside the network namespace `netns` and switches back
// before returning (also on exception). Used for operations that must be issued from inside a
// namespace (opening a socket, a TUN device). Aborts the process if the thread cannot return
// to its original namespace, because a libuv worker left in a foreign namespace would silently
// corrupt every later operation.
void WithNetns(const std::string& netns, const std::function<void()>& fn);

}  // namespace veil
