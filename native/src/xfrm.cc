#include "xfrm.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <string.h>

#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "family.h"
#include "js.h"

namespace veil {
namespace {

constexpr uint64_t kInf = ~0ULL;
// The kernel's XFRM_MAX_DEPTH (include/net/xfrm.h, not in the uapi): templates per policy.
constexpr uint32_t kMaxTemplates = 6;
// The kernel accepts at most XFRMA_REPLAY_ESN_MAX / 32 = 128 bitmap words: 4096 packets.
constexpr uint32_t kMaxReplayWindow = 4096;

// ---------------------------------------------------------------------------------------------
// Plain C++ descriptions of what JavaScript asked for (built on the main thread).

struct MarkSpec {
  bool set = false;
  uint32_t v = 0;
  uint32_t m = 0;
};

struct SelectorSpec {
  Addr src, dst;
  uint8_t src_len = 0, dst_len = 0, proto = 0;
  bool has_sport = false, has_dport = false;
  uint16_t sport = 0, dport = 0;
  int32_t ifindex = 0;
};

struct LifetimeSpec {
  uint64_t soft_bytes = kInf, hard_bytes = kInf, soft_packets = kInf, hard_packets = kInf;
  uint64_t soft_add = 0, hard_add = 0, soft_use = 0, hard_use = 0;
};

struct StateSpec {
  Addr src, dst;
  uint32_t spi = 0;
  uint8_t proto = IPPROTO_ESP;
  uint8_t mode = XFRM_MODE_TUNNEL;
  uint32_t reqid = 0;
  MarkSpec mark, set_mark;
  bool has_if_id = false;
  uint32_t if_id = 0;
  uint32_t replay_window = 0;
  bool esn = false;
  uint8_t flags = 0;
  bool has_aead = false;
  std::string aead_name;
  std::vector<uint8_t> aead_key;  // key || salt; wiped on destruction
  uint32_t icv_bits = 128;
  LifetimeSpec lft;
  bool has_sel = false;
  SelectorSpec sel;

  StateSpec() = default;
  StateSpec(const StateSpec&) = delete;
  StateSpec& operator=(const StateSpec&) = delete;
  StateSpec(StateSpec&&) = default;
  StateSpec& operator=(StateSpec&&) = default;
  ~StateSpec() {
    if (!aead_key.empty()) explicit_bzero(aead_key.data(), aead_key.size());
  }
};

struct StateIdSpec {
  Addr dst;
  uint32_t spi = 0;
  uint8_t proto = IPPROTO_ESP;
  MarkSpec mark;
};

struct TmplSpec {
  Addr src, dst;  // unset (family 0) in transport mode
  uint32_t spi = 0;
  uint8_t proto = IPPROTO_ESP;
  uint8_t mode = XFRM_MODE_TUNNEL;
  uint32_t reqid = 0;
  bool optional = false;
};

struct PolicySpec {
  SelectorSpec sel;
  uint8_t dir = XFRM_POLICY_OUT;
  uint8_t action = XFRM_POLICY_ALLOW;
  uint32_t priority = 0;
  MarkSpec mark;
  bool has_if_id = false;
  uint32_t if_id = 0;
  std::vector<TmplSpec> tmpls;
};

struct PolicyIdSpec {
  SelectorSpec sel;
  uint8_t dir = XFRM_POLICY_OUT;
  uint32_t index = 0;
  MarkSpec mark;
  bool has_if_id = false;
  uint32_t if_id = 0;
};

// ---------------------------------------------------------------------------------------------
// JS -> C++ (main thread). TypeScript has validated already; these re-check ranges and types.
//
// Batches carry thousands of objects, so property access is the hot path: a Reader creates
// every property-name string once per call and reads each field with a single lookup (the
// generic helpers of js.h create the name string and look it up two or three times per field).

class Reader {
 public:
  Reader(Napi::Env env, std::string op) : env_(env), op_(std::move(op)) {
    static constexpr const char* kNames[] = {
        "src", "dst", "srcLen", "dstLen", "proto", "sport", "dport", "ifindex", "spi", "mode", "reqid",
        "mark", "setMark", "ifId", "replayWindow", "esn", "flags", "aead", "name", "key", "icvBits",
        "lifetime", "selector", "value", "mask", "dir",
        "index", "softBytes", "hardBytes", "softPackets", "hardPackets", "softAddSeconds",
        "hardAddSeconds", "softUseSeconds", "hardUseSeconds"};
    for (const char* n : kNames) keys_.emplace(n, Napi::String::New(env, n));
  }
  const std::string& op() const { return op_; }

  // The field's value; undefined when absent. One property lookup.
  Napi::Value Get(const Napi::Object& o, const char* key) {
    auto it = keys_.find(key);
    if (it == keys_.end()) return o.Get(key);
    return o.Get(it->second);
  }
  static bool Present(const Napi::Value& v) { return !v.IsUndefined() && !v.IsNull(); }

  NlError Bad(const char* key, const std::string& what) {
    return InvalidArg(op_, std::string("Field \"") + key + "\" " + what);
  }

  double Integer(const Napi::Value& v, const char* key) {
    if (!v.IsNumber()) throw Bad(key, "must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != d || d != static_cast<double>(static_cast<int64_t>(d))) throw Bad(key, "must be an integer");
    return d;
  }

  uint32_t U32(const Napi::Object& o, const char* key, bool required, uint32_t def = 0, uint32_t max = 0xffffffffu) {
    Napi::Value v = Get(o, key);
    if (!Present(v)) {
      if (required) throw Bad(key, "is required");
      return def;
    }
    double d = Integer(v, key);
    if (d < 0 || d > max) throw Bad(key, "must be between 0 and " + std::to_string(max));
    return static_cast<uint32_t>(d);
  }

  uint64_t U64(const Napi::Object& o, const char* key, uint64_t def) {
    Napi::Value v = Get(o, key);
    if (!Present(v)) return def;
    if (v.IsBigInt()) {
      bool lossless = false;
      uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) throw Bad(key, "is out of range");
      return u;
    }
    double d = Integer(v, key);
    if (d < 0) throw Bad(key, "must not be negative");
    return static_cast<uint64_t>(d);
  }

  bool Bool(const Napi::Object& o, const char* key) {
    Napi::Value v = Get(o, key);
    if (!Present(v)) return false;
    if (!v.IsBoolean()) throw Bad(key, "must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }

  Addr Address(const Napi::Object& o, const char* key, bool required) {
    Napi::Value v = Get(o, key);
    if (!Present(v)) {
      if (required) throw Bad(key, "is required");
      return Addr{};
    }
    if (!v.IsString()) throw Bad(key, "must be a string");
    return ParseAddr(v.As<Napi::String>().Utf8Value(), op_, key);
  }

  std::optional<Napi::Object> Object(const Napi::Object& o, const char* key, bool required) {
    Napi::Value v = Get(o, key);
    if (!Present(v)) {
      if (required) throw Bad(key, "is required");
      return std::nullopt;
    }
    if (!v.IsObject()) throw Bad(key, "must be an object");
    return v.As<Napi::Object>();
  }

 private:
  Napi::Env env_;
  std::string op_;
  std::unordered_map<std::string_view, Napi::String> keys_;
};

MarkSpec GetMark(Reader& r, const Napi::Object& o, const char* key) {
  MarkSpec m;
  auto mo = r.Object(o, key, false);
  if (!mo) return m;
  m.set = true;
  m.v = r.U32(*mo, "value", true);
  m.m = r.U32(*mo, "mask", false, 0xffffffffu);
  return m;
}

SelectorSpec GetSelector(Reader& r, const Napi::Object& o) {
  SelectorSpec s;
  s.src = r.Address(o, "src", true);
  s.dst = r.Address(o, "dst", true);
  if (s.src.family != s.dst.family) {
    throw InvalidArg(r.op(), "Selector source and destination must be of the same address family");
  }
  uint32_t max = s.src.family == AF_INET6 ? 128 : 32;
  s.src_len = static_cast<uint8_t>(r.U32(o, "srcLen", true, 0, max));
  s.dst_len = static_cast<uint8_t>(r.U32(o, "dstLen", true, 0, max));
  s.proto = static_cast<uint8_t>(r.U32(o, "proto", false, 0, 255));
  Napi::Value sport = r.Get(o, "sport");
  if (Reader::Present(sport)) {
    s.has_sport = true;
    s.sport = static_cast<uint16_t>(r.U32(o, "sport", true, 0, 65535));
  }
  Napi::Value dport = r.Get(o, "dport");
  if (Reader::Present(dport)) {
    s.has_dport = true;
    s.dport = static_cast<uint16_t>(r.U32(o, "dport", true, 0, 65535));
  }
  s.ifindex = static_cast<int32_t>(r.U32(o, "ifindex", false, 0, 0x7fffffff));
  return s;
}

LifetimeSpec GetLifetime(Reader& r, const Napi::Object& o) {
  LifetimeSpec l;
  auto lo = r.Object(o, "lifetime", false);
  if (!lo) return l;
  l.soft_bytes = r.U64(*lo, "softBytes", kInf);
  l.hard_bytes = r.U64(*lo, "hardBytes", kInf);
  l.soft_packets = r.U64(*lo, "softPackets", kInf);
  l.hard_packets = r.U64(*lo, "hardPackets", kInf);
  l.soft_add = r.U64(*lo, "softAddSeconds", 0);
  l.hard_add = r.U64(*lo, "hardAddSeconds", 0);
  l.soft_use = r.U64(*lo, "softUseSeconds", 0);
  l.hard_use = r.U64(*lo, "hardUseSeconds", 0);
  return l;
}

bool GetIfId(Reader& r, const Napi::Object& o, uint32_t* out) {
  if (!Reader::Present(r.Get(o, "ifId"))) return false;
  *out = r.U32(o, "ifId", true);
  return true;
}

StateSpec GetState(Reader& r, const Napi::Object& o) {
  const std::string& op = r.op();
  StateSpec s;
  s.src = r.Address(o, "src", true);
  s.dst = r.Address(o, "dst", true);
  if (s.src.family != s.dst.family) {
    throw InvalidArg(op, "State source and destination must be of the same address family");
  }
  s.spi = r.U32(o, "spi", true);
  s.proto = static_cast<uint8_t>(r.U32(o, "proto", false, IPPROTO_ESP, 255));
  s.mode = static_cast<uint8_t>(r.U32(o, "mode", false, XFRM_MODE_TUNNEL, 255));
  s.reqid = r.U32(o, "reqid", false);
  s.mark = GetMark(r, o, "mark");
  s.set_mark = GetMark(r, o, "setMark");
  s.has_if_id = GetIfId(r, o, &s.if_id);
  s.replay_window = r.U32(o, "replayWindow", false, 0, kMaxReplayWindow);
  s.esn = r.Bool(o, "esn");
  s.flags = static_cast<uint8_t>(r.U32(o, "flags", false, 0, 255));
  if (auto a = r.Object(o, "aead", false)) {
    s.has_aead = true;
    Napi::Value name = r.Get(*a, "name");
    if (!name.IsString()) throw r.Bad("aead.name", "must be a string");
    s.aead_name = name.As<Napi::String>().Utf8Value();
    if (s.aead_name.empty() || s.aead_name.size() > 63) throw r.Bad("aead.name", "must be 1 to 63 characters");
    Napi::Value key = r.Get(*a, "key");
    if (!key.IsTypedArray()) throw r.Bad("aead.key", "must be a Buffer");
    Napi::Uint8Array bytes = key.As<Napi::Uint8Array>();
    if (bytes.ByteLength() == 0 || bytes.ByteLength() > 512) throw r.Bad("aead.key", "must be 1 to 512 bytes");
    s.aead_key.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
    s.icv_bits = r.U32(*a, "icvBits", false, 128);
  }
  s.lft = GetLifetime(r, o);
  if (auto sel = r.Object(o, "selector", false)) {
    s.has_sel = true;
    s.sel = GetSelector(r, *sel);
  }
  return s;
}

StateIdSpec GetStateId(Reader& r, const Napi::Object& o) {
  StateIdSpec s;
  s.dst = r.Address(o, "dst", true);
  s.spi = r.U32(o, "spi", true);
  s.proto = static_cast<uint8_t>(r.U32(o, "proto", false, IPPROTO_ESP, 255));
  s.mark = GetMark(r, o, "mark");
  return s;
}

PolicyIdSpec GetPolicyId(Reader& r, const Napi::Object& o) {
  PolicyIdSpec p;
  p.sel = GetSelector(r, *r.Object(o, "selector", true));
  p.dir = static_cast<uint8_t>(r.U32(o, "dir", true, 0, XFRM_POLICY_FWD));
  p.index = r.U32(o, "index", false);
  p.mark = GetMark(r, o, "mark");
  p.has_if_id = GetIfId(r, o, &p.if_id);
  return p;
}

// Policies to add cross as one Buffer of fixed-layout records in host byte order (agent/xfrm/pack.ts
// documents the layout): 10,000 policies read field by field through N-API cost more than the kernel spent
// installing them. Every length is checked; a record that does not fit is an EINVAL.
constexpr size_t kPolicyRecord = 60;
constexpr size_t kTemplateRecord = 44;

Addr PackedAddr(const uint8_t* p, bool v6) {
  Addr a;
  a.family = v6 ? AF_INET6 : AF_INET;
  std::memcpy(a.bytes, p, v6 ? 16 : 4);
  return a;
}

std::shared_ptr<std::vector<PolicySpec>> PackedPoliciesArg(const Napi::CallbackInfo& info, size_t index,
                                                           const std::string& op) {
  if (info.Length() <= index + 1 || !info[index].IsTypedArray() || !info[index + 1].IsNumber()) {
    throw InvalidArg(op, "Expected packed policies and their count");
  }
  Napi::Uint8Array arr = info[index].As<Napi::Uint8Array>();
  double count = info[index + 1].As<Napi::Number>().DoubleValue();
  const uint8_t* data = arr.Data();
  size_t len = arr.ByteLength();
  if (count < 0 || count > static_cast<double>(len / kPolicyRecord)) {
    throw InvalidArg(op, "Packed policy count does not match the buffer");
  }
  auto u16 = [](const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; };
  auto u32 = [](const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; };
  auto specs = std::make_shared<std::vector<PolicySpec>>(static_cast<size_t>(count));
  size_t off = 0;
  for (auto& p : *specs) {
    if (len - off < kPolicyRecord) throw InvalidArg(op, "Truncated packed policy record");
    const uint8_t* r = data + off;
    if ((r[0] != 4 && r[0] != 6) || r[4] > XFRM_POLICY_FWD || r[5] > XFRM_POLICY_BLOCK || r[7] > kMaxTemplates) {
      throw InvalidArg(op, "Invalid packed policy record");
    }
    bool v6 = r[0] == 6;
    if (r[1] > (v6 ? 128 : 32) || r[2] > (v6 ? 128 : 32)) throw InvalidArg(op, "Invalid packed prefix length");
    p.sel.src = PackedAddr(r + 28, v6);
    p.sel.dst = PackedAddr(r + 44, v6);
    p.sel.src_len = r[1];
    p.sel.dst_len = r[2];
    p.sel.proto = r[3];
    p.dir = r[4];
    p.action = r[5];
    p.sel.has_sport = (r[6] & 1) != 0;
    p.sel.has_dport = (r[6] & 2) != 0;
    p.sel.sport = u16(r + 8);
    p.sel.dport = u16(r + 10);
    p.priority = u32(r + 12);
    if (r[6] & 4) p.mark = MarkSpec{true, u32(r + 16), u32(r + 20)};
    p.has_if_id = (r[6] & 8) != 0;
    p.if_id = u32(r + 24);
    size_t ntmpl = r[7];
    off += kPolicyRecord;
    if ((len - off) / kTemplateRecord < ntmpl) throw InvalidArg(op, "Truncated packed template record");
    p.tmpls.resize(ntmpl);
    for (auto& t : p.tmpls) {
      const uint8_t* q = data + off;
      if (q[0] & 1) t.src = PackedAddr(q + 12, (q[0] & 4) != 0);
      if (q[0] & 2) t.dst = PackedAddr(q + 28, (q[0] & 8) != 0);
      t.proto = q[1];
      t.mode = q[2];
      t.optional = q[3] != 0;
      t.spi = u32(q + 4);
      t.reqid = u32(q + 8);
      off += kTemplateRecord;
    }
  }
  if (off != len) throw InvalidArg(op, "Packed policies have trailing bytes");
  return specs;
}

// ---------------------------------------------------------------------------------------------
// Encoders (pure C++; used by the worker and by the encode-only exports).

constexpr uint16_t kReq = NLM_F_REQUEST | NLM_F_ACK;

void CopyAddr(xfrm_address_t* out, const Addr& a) {
  std::memset(out, 0, sizeof(*out));
  if (a.family) std::memcpy(out, a.bytes, a.Len());
}

void FillSelector(xfrm_selector* x, const SelectorSpec& s) {
  CopyAddr(&x->daddr, s.dst);
  CopyAddr(&x->saddr, s.src);
  if (s.has_dport) {
    x->dport = htons(s.dport);
    x->dport_mask = 0xffff;
  }
  if (s.has_sport) {
    x->sport = htons(s.sport);
    x->sport_mask = 0xffff;
  }
  x->family = static_cast<uint16_t>(s.src.family);
  x->prefixlen_d = s.dst_len;
  x->prefixlen_s = s.src_len;
  x->proto = s.proto;
  x->ifindex = s.ifindex;
}

void FillLifetime(xfrm_lifetime_cfg* l, const LifetimeSpec& s) {
  l->soft_byte_limit = s.soft_bytes;
  l->hard_byte_limit = s.hard_bytes;
  l->soft_packet_limit = s.soft_packets;
  l->hard_packet_limit = s.hard_packets;
  l->soft_add_expires_seconds = s.soft_add;
  l->hard_add_expires_seconds = s.hard_add;
  l->soft_use_expires_seconds = s.soft_use;
  l->hard_use_expires_seconds = s.hard_use;
}

void PutMark(MsgBuilder& m, const MarkSpec& mark) {
  if (!mark.set) return;
  xfrm_mark x{};
  x.v = mark.v;
  x.m = mark.m;
  m.PutStruct(XFRMA_MARK, x);
}

// `ip xfrm state add src S dst D proto esp spi SPI reqid R mode tunnel|transport
//   aead 'rfc4106(gcm(aes))' KEYSALT 128 [replay-window W] [flag esn] [mark V mask M]
//   [output-mark V mask M] [if_id ID] [limit ...] [sel src ... dst ...]`
// (`ip xfrm state update ...` with update = true).
MsgBuilder EncodeState(const StateSpec& s, bool update) {
  MsgBuilder m(update ? XFRM_MSG_UPDSA : XFRM_MSG_NEWSA, kReq | (update ? 0 : NLM_F_CREATE | NLM_F_EXCL));
  xfrm_usersa_info info;
  std::memset(&info, 0, sizeof(info));
  if (s.has_sel) {
    FillSelector(&info.sel, s.sel);
  } else {
    info.sel.family = static_cast<uint16_t>(s.dst.family);
  }
  CopyAddr(&info.id.daddr, s.dst);
  info.id.spi = htonl(s.spi);
  info.id.proto = s.proto;
  CopyAddr(&info.saddr, s.src);
  FillLifetime(&info.lft, s.lft);
  info.reqid = s.reqid;
  info.family = static_cast<uint16_t>(s.dst.family);
  info.mode = s.mode;
  // ESN and windows above 32 packets need the extended replay state (the legacy one is a single
  // 32-bit bitmap and the kernel silently caps it at 32); the legacy field must then be 0
  // (the kernel rejects both at once).
  bool esn_attr = s.esn || s.replay_window > 32;
  info.replay_window = esn_attr ? 0 : static_cast<uint8_t>(s.replay_window);
  info.flags = static_cast<uint8_t>(s.flags | (s.esn ? XFRM_STATE_ESN : 0));
  m.Header(info);
  if (s.has_aead) {
    std::vector<uint8_t> buf(sizeof(xfrm_algo_aead) + s.aead_key.size(), 0);
    auto* alg = reinterpret_cast<xfrm_algo_aead*>(buf.data());
    std::memcpy(alg->alg_name, s.aead_name.data(), std::min<size_t>(s.aead_name.size(), 63));
    alg->alg_key_len = static_cast<unsigned int>(s.aead_key.size() * 8);
    alg->alg_icv_len = s.icv_bits;
    std::memcpy(buf.data() + sizeof(xfrm_algo_aead), s.aead_key.data(), s.aead_key.size());
    m.Put(XFRMA_ALG_AEAD, buf.data(), buf.size());
    explicit_bzero(buf.data(), buf.size());
  }
  if (esn_attr) {
    uint32_t words = (s.replay_window + 31) / 32;
    std::vector<uint8_t> buf(sizeof(xfrm_replay_state_esn) + words * 4, 0);
    auto* r = reinterpret_cast<xfrm_replay_state_esn*>(buf.data());
    r->bmp_len = words;
    r->replay_window = s.replay_window;
    m.Put(XFRMA_REPLAY_ESN_VAL, buf.data(), buf.size());
  }
  PutMark(m, s.mark);
  if (s.set_mark.set) {
    m.PutU32(XFRMA_SET_MARK, s.set_mark.v);
    m.PutU32(XFRMA_SET_MARK_MASK, s.set_mark.m);
  }
  if (s.has_if_id) m.PutU32(XFRMA_IF_ID, s.if_id);
  return m;
}

// GETSA: `ip xfrm state get dst D proto esp spi SPI [mark V mask M]`;
// DELSA: `ip xfrm state delete dst D proto esp spi SPI [mark V mask M]`.
MsgBuilder EncodeStateId(uint16_t type, const StateIdSpec& s) {
  MsgBuilder m(type, kReq);
  xfrm_usersa_id id;
  std::memset(&id, 0, sizeof(id));
  CopyAddr(&id.daddr, s.dst);
  id.spi = htonl(s.spi);
  id.family = static_cast<uint16_t>(s.dst.family);
  id.proto = s.proto;
  m.Header(id);
  PutMark(m, s.mark);
  return m;
}

StateIdSpec IdOf(const StateSpec& s) {
  StateIdSpec id;
  id.dst = s.dst;
  id.spi = s.spi;
  id.proto = s.proto;
  id.mark = s.mark;
  return id;
}

// `ip xfrm state flush [proto P]` (255 = IPSEC_PROTO_ANY: every protocol).
MsgBuilder EncodeStatesFlush(uint8_t proto) {
  MsgBuilder m(XFRM_MSG_FLUSHSA, kReq);
  xfrm_usersa_flush f{};
  f.proto = proto;
  m.Header(f);
  return m;
}

MsgBuilder EncodeDump(uint16_t type) { return MsgBuilder(type, NLM_F_REQUEST | NLM_F_DUMP); }

// `ip xfrm policy add src S/L dst D/L [proto P [sport X] [dport Y]] dir in|out|fwd
//   [priority N] [action allow|block] [mark V mask M] [if_id ID]
//   [tmpl src TS dst TD proto esp [spi SPI] reqid R mode tunnel|transport [level use]]...`
// (`ip xfrm policy update ...` with update = true).
MsgBuilder EncodePolicy(const PolicySpec& p, bool update) {
  MsgBuilder m(update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY,
               kReq | (update ? 0 : NLM_F_CREATE | NLM_F_EXCL));
  xfrm_userpolicy_info info;
  std::memset(&info, 0, sizeof(info));
  FillSelector(&info.sel, p.sel);
  FillLifetime(&info.lft, LifetimeSpec{});
  info.priority = p.priority;
  info.dir = p.dir;
  info.action = p.action;
  m.Header(info);
  if (p.tmpls.size() > kMaxTemplates) throw NlError(E2BIG, "xfrm.policy.encode", "A policy has at most 6 templates");
  if (!p.tmpls.empty()) {
    // At most kMaxTemplates: no allocation per policy.
    xfrm_user_tmpl ts[kMaxTemplates];
    std::memset(ts, 0, sizeof(ts));
    for (size_t i = 0; i < p.tmpls.size(); i++) {
      const TmplSpec& t = p.tmpls[i];
      CopyAddr(&ts[i].id.daddr, t.dst);
      ts[i].id.spi = htonl(t.spi);
      ts[i].id.proto = t.proto;
      ts[i].family = static_cast<uint16_t>(t.dst.family ? t.dst.family : p.sel.src.family);
      CopyAddr(&ts[i].saddr, t.src);
      ts[i].reqid = t.reqid;
      ts[i].mode = t.mode;
      ts[i].optional = t.optional ? 1 : 0;
      // Any algorithm: the state, not the template, decides the cipher.
      ts[i].aalgos = ~0u;
      ts[i].ealgos = ~0u;
      ts[i].calgos = ~0u;
    }
    m.Put(XFRMA_TMPL, ts, p.tmpls.size() * sizeof(xfrm_user_tmpl));
  }
  PutMark(m, p.mark);
  if (p.has_if_id) m.PutU32(XFRMA_IF_ID, p.if_id);
  return m;
}

// GETPOLICY: `ip xfrm policy get src S/L dst D/L dir DIR [mark V mask M] [if_id ID]`;
// DELPOLICY: `ip xfrm policy delete src S/L dst D/L dir DIR [mark V mask M] [if_id ID]`
// (or `... index N dir DIR` when index is set).
MsgBuilder EncodePolicyId(uint16_t type, const PolicyIdSpec& p) {
  MsgBuilder m(type, kReq);
  xfrm_userpolicy_id id;
  std::memset(&id, 0, sizeof(id));
  if (p.index == 0) FillSelector(&id.sel, p.sel);
  id.index = p.index;
  id.dir = p.dir;
  m.Header(id);
  PutMark(m, p.mark);
  if (p.has_if_id) m.PutU32(XFRMA_IF_ID, p.if_id);
  return m;
}

PolicyIdSpec IdOf(const PolicySpec& p) {
  PolicyIdSpec id;
  id.sel = p.sel;
  id.dir = p.dir;
  id.mark = p.mark;
  id.has_if_id = p.has_if_id;
  id.if_id = p.if_id;
  return id;
}

// `ip xfrm policy flush`.
MsgBuilder EncodePoliciesFlush() { return MsgBuilder(XFRM_MSG_FLUSHPOLICY, kReq); }

// Overwrites every built message (they may hold key material).
void Wipe(std::vector<MsgBuilder>& msgs) {
  for (auto& m : msgs) {
    auto& b = m.Finish();
    explicit_bzero(b.data(), b.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Parsers (worker thread or parse exports): kernel messages -> plain structs. Key bytes in the
// message are wiped in place once the algorithm's name and length are read.

struct AlgInfo {
  bool set = false;
  std::string name;
  uint32_t key_bits = 0;
  uint32_t extra_bits = 0;  // ICV length (AEAD) or truncation length (auth)
};

struct ParsedState {
  xfrm_usersa_info info;
  MarkSpec mark, set_mark;
  bool has_if_id = false;
  uint32_t if_id = 0;
  AlgInfo aead, crypt, auth, comp;
  bool has_esn = false;
  // The fixed part of xfrm_replay_state_esn (the bitmap is not reported).
  struct {
    uint32_t bmp_len, oseq, seq, oseq_hi, seq_hi, replay_window;
  } esn{};
  bool has_replay = false;
  xfrm_replay_state replay{};
  bool has_lastused = false;
  uint64_t lastused = 0;
  uint32_t extra_flags = 0;
};

struct ParsedPolicy {
  xfrm_userpolicy_info info;
  std::vector<xfrm_user_tmpl> tmpls;
  MarkSpec mark;
  bool has_if_id = false;
  uint32_t if_id = 0;
  uint8_t type = XFRM_POLICY_TYPE_MAIN;
};

// Reads an xfrm_algo-style attribute: name[64], key length in bits, optionally one more u32,
// then the key, which is wiped.
AlgInfo ReadAlg(const Attr& a, size_t fixed, bool has_extra, const std::string& op) {
  if (a.len < fixed) throw MalformedReply(op, "Truncated XFRM algorithm attribute");
  AlgInfo out;
  out.set = true;
  out.name.assign(reinterpret_cast<const char*>(a.data), strnlen(reinterpret_cast<const char*>(a.data), 64));
  uint32_t v = 0;
  std::memcpy(&v, a.data + 64, 4);
  out.key_bits = v;
  if (has_extra) {
    std::memcpy(&v, a.data + 68, 4);
    out.extra_bits = v;
  }
  // The receive buffer is ours (mutable); the key must not linger in it.
  if (a.len > fixed) explicit_bzero(const_cast<uint8_t*>(a.data) + fixed, a.len - fixed);
  return out;
}

MarkSpec ReadMark(const Attr& a, const std::string& op) {
  xfrm_mark x{};
  if (!a.As(&x)) throw MalformedReply(op, "Truncated XFRMA_MARK attribute");
  return MarkSpec{true, x.v, x.m};
}

ParsedState ParseState(const nlmsghdr* nlh, const std::string& op) {
  ParsedState p;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(xfrm_usersa_info)) {
    throw MalformedReply(op, "XFRM state message is shorter than xfrm_usersa_info");
  }
  std::memcpy(&p.info, NLMSG_DATA(nlh), sizeof(p.info));
  uint32_t set_mark_mask = 0xffffffffu;
  bool ok = ForEachMsgAttr(nlh, sizeof(xfrm_usersa_info), [&](const Attr& a) {
    switch (a.type) {
      case XFRMA_ALG_AEAD: p.aead = ReadAlg(a, sizeof(xfrm_algo_aead), true, op); break;
      case XFRMA_ALG_CRYPT: p.crypt = ReadAlg(a, sizeof(xfrm_algo), false, op); break;
      case XFRMA_ALG_AUTH:
        if (!p.auth.set) p.auth = ReadAlg(a, sizeof(xfrm_algo), false, op);
        else ReadAlg(a, sizeof(xfrm_algo), false, op);
        break;
      case XFRMA_ALG_AUTH_TRUNC: p.auth = ReadAlg(a, sizeof(xfrm_algo_auth), true, op); break;
      case XFRMA_ALG_COMP: p.comp = ReadAlg(a, sizeof(xfrm_algo), false, op); break;
      case XFRMA_MARK: p.mark = ReadMark(a, op); break;
      case XFRMA_SET_MARK:
        if (a.len < 4) throw MalformedReply(op, "Truncated XFRMA_SET_MARK attribute");
        p.set_mark.set = true;
        p.set_mark.v = a.U32();
        break;
      case XFRMA_SET_MARK_MASK:
        if (a.len < 4) throw MalformedReply(op, "Truncated XFRMA_SET_MARK_MASK attribute");
        set_mark_mask = a.U32();
        break;
      case XFRMA_IF_ID:
        if (a.len < 4) throw MalformedReply(op, "Truncated XFRMA_IF_ID attribute");
        p.has_if_id = true;
        p.if_id = a.U32();
        break;
      case XFRMA_REPLAY_ESN_VAL:
        static_assert(sizeof(p.esn) == sizeof(xfrm_replay_state_esn));
        if (!a.As(&p.esn)) throw MalformedReply(op, "Truncated XFRMA_REPLAY_ESN_VAL attribute");
        p.has_esn = true;
        break;
      case XFRMA_REPLAY_VAL:
        if (!a.As(&p.replay)) throw MalformedReply(op, "Truncated XFRMA_REPLAY_VAL attribute");
        p.has_replay = true;
        break;
      case XFRMA_LASTUSED:
        if (a.len < 8) throw MalformedReply(op, "Truncated XFRMA_LASTUSED attribute");
        p.has_lastused = true;
        p.lastused = a.U64();
        break;
      case XFRMA_SA_EXTRA_FLAGS:
        if (a.len < 4) throw MalformedReply(op, "Truncated XFRMA_SA_EXTRA_FLAGS attribute");
        p.extra_flags = a.U32();
        break;
      default: break;  // unknown or uninteresting attributes are skipped
    }
  });
  if (!ok) throw MalformedReply(op, "Truncated attribute in XFRM state message");
  if (p.set_mark.set) p.set_mark.m = set_mark_mask;
  return p;
}

ParsedPolicy ParsePolicy(const nlmsghdr* nlh, const std::string& op) {
  ParsedPolicy p;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(xfrm_userpolicy_info)) {
    throw MalformedReply(op, "XFRM policy message is shorter than xfrm_userpolicy_info");
  }
  std::memcpy(&p.info, NLMSG_DATA(nlh), sizeof(p.info));
  bool ok = ForEachMsgAttr(nlh, sizeof(xfrm_userpolicy_info), [&](const Attr& a) {
    switch (a.type) {
      case XFRMA_TMPL: {
        if (a.len % sizeof(xfrm_user_tmpl) != 0) {
          throw MalformedReply(op, "XFRMA_TMPL length is not a multiple of xfrm_user_tmpl");
        }
        size_t n = a.len / sizeof(xfrm_user_tmpl);
        p.tmpls.resize(n);
        if (n) std::memcpy(p.tmpls.data(), a.data, a.len);
        break;
      }
      case XFRMA_MARK: p.mark = ReadMark(a, op); break;
      case XFRMA_IF_ID:
        if (a.len < 4) throw MalformedReply(op, "Truncated XFRMA_IF_ID attribute");
        p.has_if_id = true;
        p.if_id = a.U32();
        break;
      case XFRMA_POLICY_TYPE: {
        xfrm_userpolicy_type t{};
        if (!a.As(&t)) throw MalformedReply(op, "Truncated XFRMA_POLICY_TYPE attribute");
        p.type = t.type;
        break;
      }
      default: break;
    }
  });
  if (!ok) throw MalformedReply(op, "Truncated attribute in XFRM policy message");
  return p;
}

// ---------------------------------------------------------------------------------------------
// C++ -> JS (main thread).
//
// Lists return thousands of objects: property names are created once per call (Out) instead of
// once per field, and each object is built in its own handle scope.

class Out {
 public:
  explicit Out(Napi::Env env) {
    static constexpr const char* kNames[] = {"aalgos", "action", "addTime", "aead", "auth", "bitmapWords", "bytes", "calgos", "comp", "crypt", "current", "dir", "dport", "dportMask", "dst", "dstLen", "ealgos", "esn", "extraFlags", "family", "flags", "hardAddSeconds", "hardBytes", "hardPackets", "hardUseSeconds", "ifId", "ifindex", "index", "integrityFailed", "keyBits", "lastUsed", "lifetime", "mark", "mask", "mode", "name", "optional", "oseq", "oseqHi", "packets", "priority", "proto", "replay", "replayWindow", "reqid", "selector", "seq", "seqHi", "setMark", "share", "softAddSeconds", "softBytes", "softPackets", "softUseSeconds", "spi", "sport", "sportMask", "src", "srcLen", "stats", "templates", "type", "useTime", "value", "icvBits", "truncBits"};
    for (const char* n : kNames) keys_.emplace(n, Napi::String::New(env, n));
  }
  void Set(Napi::Object& o, const char* key, const Napi::Value& v) { o.Set(keys_.at(key), v); }
  void Set(Napi::Object& o, const char* key, const std::string& v) {
    o.Set(keys_.at(key), Napi::String::New(o.Env(), v));
  }

 private:
  std::unordered_map<std::string_view, Napi::String> keys_;
};

Napi::Value AddrToJs(Napi::Env env, uint16_t family, const xfrm_address_t& a) {
  if (family != AF_INET && family != AF_INET6) return env.Null();
  return Napi::String::New(env, FormatAddr(family, &a));
}

Napi::Value MarkToJs(Out& k, Napi::Env env, const MarkSpec& m) {
  if (!m.set) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "value", Napi::Number::New(env, m.v));
  k.Set(o, "mask", Napi::Number::New(env, m.m));
  return o;
}

Napi::Object SelectorToJs(Out& k, Napi::Env env, const xfrm_selector& s) {
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "family", Napi::Number::New(env, s.family));
  k.Set(o, "src", AddrToJs(env, s.family, s.saddr));
  k.Set(o, "srcLen", Napi::Number::New(env, s.prefixlen_s));
  k.Set(o, "dst", AddrToJs(env, s.family, s.daddr));
  k.Set(o, "dstLen", Napi::Number::New(env, s.prefixlen_d));
  k.Set(o, "proto", Napi::Number::New(env, s.proto));
  k.Set(o, "sport", Napi::Number::New(env, ntohs(s.sport)));
  k.Set(o, "sportMask", Napi::Number::New(env, ntohs(s.sport_mask)));
  k.Set(o, "dport", Napi::Number::New(env, ntohs(s.dport)));
  k.Set(o, "dportMask", Napi::Number::New(env, ntohs(s.dport_mask)));
  k.Set(o, "ifindex", Napi::Number::New(env, s.ifindex));
  return o;
}

Napi::Object LifetimeToJs(Out& k, Napi::Env env, const xfrm_lifetime_cfg& l) {
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "softBytes", Napi::BigInt::New(env, static_cast<uint64_t>(l.soft_byte_limit)));
  k.Set(o, "hardBytes", Napi::BigInt::New(env, static_cast<uint64_t>(l.hard_byte_limit)));
  k.Set(o, "softPackets", Napi::BigInt::New(env, static_cast<uint64_t>(l.soft_packet_limit)));
  k.Set(o, "hardPackets", Napi::BigInt::New(env, static_cast<uint64_t>(l.hard_packet_limit)));
  k.Set(o, "softAddSeconds", Napi::BigInt::New(env, static_cast<uint64_t>(l.soft_add_expires_seconds)));
  k.Set(o, "hardAddSeconds", Napi::BigInt::New(env, static_cast<uint64_t>(l.hard_add_expires_seconds)));
  k.Set(o, "softUseSeconds", Napi::BigInt::New(env, static_cast<uint64_t>(l.soft_use_expires_seconds)));
  k.Set(o, "hardUseSeconds", Napi::BigInt::New(env, static_cast<uint64_t>(l.hard_use_expires_seconds)));
  return o;
}

Napi::Object CurrentToJs(Out& k, Napi::Env env, const xfrm_lifetime_cur& c) {
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "bytes", Napi::BigInt::New(env, static_cast<uint64_t>(c.bytes)));
  k.Set(o, "packets", Napi::BigInt::New(env, static_cast<uint64_t>(c.packets)));
  k.Set(o, "addTime", Napi::BigInt::New(env, static_cast<uint64_t>(c.add_time)));
  k.Set(o, "useTime", Napi::BigInt::New(env, static_cast<uint64_t>(c.use_time)));
  return o;
}

Napi::Value AlgToJs(Out& k, Napi::Env env, const AlgInfo& a, const char* extra) {
  if (!a.set) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "name", a.name);
  k.Set(o, "keyBits", Napi::Number::New(env, a.key_bits));
  if (extra) k.Set(o, extra, Napi::Number::New(env, a.extra_bits));
  return o;
}

Napi::Object StateToJs(Out& k, Napi::Env env, const ParsedState& p) {
  const xfrm_usersa_info& i = p.info;
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "family", Napi::Number::New(env, i.family));
  k.Set(o, "src", AddrToJs(env, i.family, i.saddr));
  k.Set(o, "dst", AddrToJs(env, i.family, i.id.daddr));
  k.Set(o, "spi", Napi::Number::New(env, ntohl(i.id.spi)));
  k.Set(o, "proto", Napi::Number::New(env, i.id.proto));
  k.Set(o, "mode", Napi::Number::New(env, i.mode));
  k.Set(o, "reqid", Napi::Number::New(env, i.reqid));
  k.Set(o, "flags", Napi::Number::New(env, i.flags));
  k.Set(o, "extraFlags", Napi::Number::New(env, p.extra_flags));
  k.Set(o, "esn", Napi::Boolean::New(env, (i.flags & XFRM_STATE_ESN) != 0));
  k.Set(o, "replayWindow", Napi::Number::New(env, p.has_esn ? p.esn.replay_window : i.replay_window));
  k.Set(o, "mark", MarkToJs(k, env, p.mark));
  k.Set(o, "setMark", MarkToJs(k, env, p.set_mark));
  k.Set(o, "ifId", p.has_if_id ? Napi::Number::New(env, p.if_id) : env.Null());
  k.Set(o, "aead", AlgToJs(k, env, p.aead, "icvBits"));
  k.Set(o, "crypt", AlgToJs(k, env, p.crypt, nullptr));
  k.Set(o, "auth", AlgToJs(k, env, p.auth, "truncBits"));
  k.Set(o, "comp", AlgToJs(k, env, p.comp, nullptr));
  k.Set(o, "selector", SelectorToJs(k, env, i.sel));
  k.Set(o, "lifetime", LifetimeToJs(k, env, i.lft));
  k.Set(o, "current", CurrentToJs(k, env, i.curlft));
  Napi::Object stats = Napi::Object::New(env);
  k.Set(stats, "replayWindow", Napi::Number::New(env, i.stats.replay_window));
  k.Set(stats, "replay", Napi::Number::New(env, i.stats.replay));
  k.Set(stats, "integrityFailed", Napi::Number::New(env, i.stats.integrity_failed));
  k.Set(o, "stats", stats);
  Napi::Object replay = Napi::Object::New(env);
  if (p.has_esn) {
    k.Set(replay, "oseq", Napi::Number::New(env, p.esn.oseq));
    k.Set(replay, "seq", Napi::Number::New(env, p.esn.seq));
    k.Set(replay, "oseqHi", Napi::Number::New(env, p.esn.oseq_hi));
    k.Set(replay, "seqHi", Napi::Number::New(env, p.esn.seq_hi));
    k.Set(replay, "bitmapWords", Napi::Number::New(env, p.esn.bmp_len));
  } else {
    k.Set(replay, "oseq", Napi::Number::New(env, p.has_replay ? p.replay.oseq : 0));
    k.Set(replay, "seq", Napi::Number::New(env, p.has_replay ? p.replay.seq : 0));
    k.Set(replay, "oseqHi", Napi::Number::New(env, 0));
    k.Set(replay, "seqHi", Napi::Number::New(env, 0));
    k.Set(replay, "bitmapWords", Napi::Number::New(env, p.has_replay ? 1 : 0));
  }
  k.Set(o, "replay", replay);
  k.Set(o, "lastUsed", p.has_lastused ? Napi::BigInt::New(env, p.lastused) : env.Null());
  return o;
}

Napi::Object PolicyToJs(Out& k, Napi::Env env, const ParsedPolicy& p) {
  const xfrm_userpolicy_info& i = p.info;
  Napi::Object o = Napi::Object::New(env);
  k.Set(o, "selector", SelectorToJs(k, env, i.sel));
  k.Set(o, "dir", Napi::Number::New(env, i.dir));
  k.Set(o, "action", Napi::Number::New(env, i.action));
  k.Set(o, "priority", Napi::Number::New(env, i.priority));
  k.Set(o, "index", Napi::Number::New(env, i.index));
  k.Set(o, "flags", Napi::Number::New(env, i.flags));
  k.Set(o, "share", Napi::Number::New(env, i.share));
  k.Set(o, "type", Napi::Number::New(env, p.type));
  k.Set(o, "mark", MarkToJs(k, env, p.mark));
  k.Set(o, "ifId", p.has_if_id ? Napi::Number::New(env, p.if_id) : env.Null());
  k.Set(o, "lifetime", LifetimeToJs(k, env, i.lft));
  k.Set(o, "current", CurrentToJs(k, env, i.curlft));
  Napi::Array ts = Napi::Array::New(env, p.tmpls.size());
  for (size_t n = 0; n < p.tmpls.size(); n++) {
    const xfrm_user_tmpl& t = p.tmpls[n];
    Napi::Object to = Napi::Object::New(env);
    k.Set(to, "family", Napi::Number::New(env, t.family));
    k.Set(to, "src", AddrToJs(env, t.family, t.saddr));
    k.Set(to, "dst", AddrToJs(env, t.family, t.id.daddr));
    k.Set(to, "spi", Napi::Number::New(env, ntohl(t.id.spi)));
    k.Set(to, "proto", Napi::Number::New(env, t.id.proto));
    k.Set(to, "mode", Napi::Number::New(env, t.mode));
    k.Set(to, "reqid", Napi::Number::New(env, t.reqid));
    k.Set(to, "share", Napi::Number::New(env, t.share));
    k.Set(to, "optional", Napi::Boolean::New(env, t.optional != 0));
    k.Set(to, "aalgos", Napi::Number::New(env, t.aalgos));
    k.Set(to, "ealgos", Napi::Number::New(env, t.ealgos));
    k.Set(to, "calgos", Napi::Number::New(env, t.calgos));
    ts.Set(n, to);
  }
  k.Set(o, "templates", ts);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Kernel operations (worker thread).

// Sends `msgs` pipelined. On the first failure, `undo(i)` (when given) builds the request that
// reverts object i, and every object the kernel had applied is reverted, so a failed batch of
// creates leaves nothing behind. Throws the first failure with its index.
void ApplyBatch(Socket& sock, std::vector<MsgBuilder>& msgs, const std::string& op,
                const std::function<MsgBuilder(size_t)>& undo) {
  std::vector<bool> applied;
  NlError err(0, op, "");
  int k = sock.Batch(msgs, op, true, &applied, &err);
  Wipe(msgs);
  if (k < 0) return;
  if (undo) {
    std::vector<MsgBuilder> undos;
    for (size_t i = 0; i < applied.size(); i++) {
      if (applied[i]) undos.push_back(undo(i));
    }
    if (!undos.empty()) {
      std::vector<bool> reverted;
      NlError uerr(0, op, "");
      int f = sock.Batch(undos, op + ".rollback", false, &reverted, &uerr);
      if (f >= 0) {
        size_t failed = 0;
        for (bool r : reverted) failed += r ? 0 : 1;
        err.detail += "; rolling back the " + std::to_string(undos.size()) + " objects applied before it failed for " +
                      std::to_string(failed) + " of them (" + strerror(uerr.err) + ")";
      }
    }
  }
  throw err;
}

// Deletes pipelined; with ignore_missing, objects that are already gone (ESRCH / ENOENT) are
// skipped. Returns the number deleted; throws the first other failure with its index.
size_t DeleteBatch(Socket& sock, std::vector<MsgBuilder>& msgs, const std::string& op, bool ignore_missing) {
  std::vector<size_t> pending(msgs.size());
  for (size_t i = 0; i < msgs.size(); i++) pending[i] = i;
  size_t deleted = 0;
  while (!pending.empty()) {
    std::vector<MsgBuilder> round;
    round.reserve(pending.size());
    for (size_t i : pending) round.push_back(msgs[i]);
    std::vector<bool> applied;
    NlError err(0, op, "");
    int k = sock.Batch(round, op, false, &applied, &err);
    std::vector<size_t> next;
    for (size_t j = 0; j < round.size(); j++) {
      if (applied[j]) {
        deleted++;
      } else if (static_cast<int>(j) != k) {
        next.push_back(pending[j]);
      }
    }
    if (k < 0) break;
    err.index = static_cast<int>(pending[static_cast<size_t>(k)]);
    if (!(ignore_missing && (err.err == ESRCH || err.err == ENOENT))) throw err;
    pending.swap(next);
  }
  return deleted;
}

template <typename Parsed, typename ParseFn>
std::vector<Parsed> DumpAll(const std::string& netns, uint16_t type, uint16_t reply_type, const std::string& op,
                            ParseFn parse) {
  Socket sock(NETLINK_XFRM, netns);
  MsgBuilder m = EncodeDump(type);
  std::vector<Parsed> out;
  sock.Dump(m, op, [&](const nlmsghdr* r) {
    if (r->nlmsg_type == reply_type) out.push_back(parse(r, op));
  });
  return out;
}

uint8_t ProtoArg(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
  if (info.Length() <= index || !info[index].IsNumber()) throw InvalidArg(op, "Expected a protocol number");
  double d = info[index].As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 255 || d != static_cast<int>(d)) throw InvalidArg(op, "Protocol must be 0..255");
  return static_cast<uint8_t>(d);
}

bool BoolArg(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && info[index].IsBoolean() && info[index].As<Napi::Boolean>().Value();
}

uint16_t IdType(const Napi::CallbackInfo& info, size_t index, uint16_t get, uint16_t del, const std::string& op) {
  if (info.Length() <= index || !info[index].IsString()) throw InvalidArg(op, "Expected \"get\" or \"delete\"");
  std::string k = info[index].As<Napi::String>().Utf8Value();
  if (k == "get") return get;
  if (k == "delete") return del;
  throw InvalidArg(op, "Expected \"get\" or \"delete\"");
}

Napi::Array ArrayArg(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
  if (info.Length() <= index || !info[index].IsArray()) throw InvalidArg(op, "Expected an array");
  return info[index].As<Napi::Array>();
}

// Converts an array argument into specs with `get(reader, element)`.
template <typename Spec, typename GetFn>
std::shared_ptr<std::vector<Spec>> SpecsArg(const Napi::CallbackInfo& info, size_t index, const std::string& op,
                                            GetFn get) {
  Napi::Array arr = ArrayArg(info, index, op);
  Reader reader(info.Env(), op);
  auto specs = std::make_shared<std::vector<Spec>>();
  specs->reserve(arr.Length());
  for (uint32_t i = 0, n = arr.Length(); i < n; i++) {
    // One scope per object: a batch of 10,000 would otherwise pin hundreds of thousands of handles.
    Napi::HandleScope scope(info.Env());
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw InvalidArg(op, "Element " + std::to_string(i) + " must be an object");
    specs->push_back(get(reader, v.As<Napi::Object>()));
  }
  return specs;
}

template <typename Spec, typename GetFn>
std::shared_ptr<Spec> SpecArg(const Napi::CallbackInfo& info, size_t index, const std::string& op, GetFn get) {
  if (info.Length() <= index || !info[index].IsObject()) throw InvalidArg(op, "Expected an id object");
  Reader reader(info.Env(), op);
  return std::make_shared<Spec>(get(reader, info[index].As<Napi::Object>()));
}

// ---------------------------------------------------------------------------------------------
// Exports. States and policies are served by the same code; a kind names its per-object pieces.

struct StateKind {
  using Spec = StateSpec;
  using Id = StateIdSpec;
  using Parsed = ParsedState;
  static constexpr const char* kOp = "xfrm.state";
  static constexpr uint16_t kNew = XFRM_MSG_NEWSA, kUpd = XFRM_MSG_UPDSA, kGet = XFRM_MSG_GETSA, kDel = XFRM_MSG_DELSA;
  static constexpr int kAbsent = ESRCH;  // what a get of a missing state fails with
  static constexpr size_t kSpecArgs = 1;  // states[]
  static std::shared_ptr<std::vector<Spec>> Specs(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
    return SpecsArg<StateSpec>(info, index, op, GetState);
  }
  static constexpr auto GetId = GetStateId;
  static constexpr auto Encode = EncodeState;
  static constexpr auto EncodeId = EncodeStateId;
  static constexpr auto Parse = ParseState;
  static constexpr auto ToJs = StateToJs;
};

struct PolicyKind {
  using Spec = PolicySpec;
  using Id = PolicyIdSpec;
  using Parsed = ParsedPolicy;
  static constexpr const char* kOp = "xfrm.policy";
  static constexpr uint16_t kNew = XFRM_MSG_NEWPOLICY, kUpd = XFRM_MSG_UPDPOLICY, kGet = XFRM_MSG_GETPOLICY,
                            kDel = XFRM_MSG_DELPOLICY;
  static constexpr int kAbsent = ENOENT;
  static constexpr size_t kSpecArgs = 2;  // packed records, count
  static std::shared_ptr<std::vector<Spec>> Specs(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
    return PackedPoliciesArg(info, index, op);
  }
  static constexpr auto GetId = GetPolicyId;
  static constexpr auto Encode = EncodePolicy;
  static constexpr auto EncodeId = EncodePolicyId;
  static constexpr auto Parse = ParsePolicy;
  static constexpr auto ToJs = PolicyToJs;
};

template <typename K>
std::string OpName(const char* verb) {
  return std::string(K::kOp) + "." + verb;
}

template <typename K>
std::vector<MsgBuilder> EncodeSpecs(const std::vector<typename K::Spec>& specs, bool update) {
  return EncodeEach(specs, [update](const typename K::Spec& s) { return K::Encode(s, update); });
}

template <typename K>
std::vector<MsgBuilder> EncodeIds(const std::vector<typename K::Id>& ids, uint16_t type) {
  return EncodeEach(ids, [type](const typename K::Id& id) { return K::EncodeId(type, id); });
}

// xfrmStatesApply(opts, states[], update) / xfrmPoliciesApply(opts, packed, count, update):
// NEW (create-exclusive) or UPD, pipelined; a failed create batch is rolled back.
template <typename K>
Napi::Value Apply(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    bool update = BoolArg(info, 1 + K::kSpecArgs);
    std::string op = OpName<K>(update ? "update" : "add");
    std::string netns = GetNetns(info, 0, op);
    auto specs = K::Specs(info, 1, op);
    return RunAsync(info.Env(), [netns, specs, update, op]() {
      std::vector<MsgBuilder> msgs = EncodeSpecs<K>(*specs, update);
      Socket sock(NETLINK_XFRM, netns);
      std::function<MsgBuilder(size_t)> undo;
      if (!update) undo = UndoBy(*specs, [](const typename K::Spec& s) { return K::EncodeId(K::kDel, IdOf(s)); });
      try {
        ApplyBatch(sock, msgs, op, undo);
      } catch (...) {
        Wipe(msgs);
        specs->clear();
        throw;
      }
      specs->clear();  // wipes state keys now rather than when the promise settles
    });
  });
}

// xfrmStatesDelete / xfrmPoliciesDelete(opts, ids[], ignoreMissing): resolves the number deleted.
template <typename K>
Napi::Value Delete(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = OpName<K>("delete");
    std::string netns = GetNetns(info, 0, op);
    auto ids = SpecsArg<typename K::Id>(info, 1, op, K::GetId);
    bool ignore_missing = BoolArg(info, 2);
    auto deleted = std::make_shared<size_t>(0);
    return RunAsync(
        info.Env(),
        [netns, ids, ignore_missing, op, deleted]() {
          std::vector<MsgBuilder> msgs = EncodeIds<K>(*ids, K::kDel);
          Socket sock(NETLINK_XFRM, netns);
          *deleted = DeleteBatch(sock, msgs, op, ignore_missing);
        },
        [deleted](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*deleted)); });
  });
}

// xfrmStateGet / xfrmPolicyGet(opts, id): resolves null when absent.
template <typename K>
Napi::Value Get(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = OpName<K>("get");
    std::string netns = GetNetns(info, 0, op);
    auto id = SpecArg<typename K::Id>(info, 1, op, K::GetId);
    auto found = std::make_shared<std::vector<typename K::Parsed>>();
    return RunAsync(
        info.Env(),
        [netns, id, found, op]() {
          Socket sock(NETLINK_XFRM, netns);
          MsgBuilder m = K::EncodeId(K::kGet, *id);
          try {
            sock.RequestReplies(m, op, [&](const nlmsghdr* r) {
              if (r->nlmsg_type == K::kNew) found->push_back(K::Parse(r, op));
            });
          } catch (const NlError& e) {
            if (e.err != K::kAbsent) throw;
          }
        },
        [found](Napi::Env env) -> Napi::Value {
          if (found->empty()) return env.Null();
          Out k(env);
          return K::ToJs(k, env, found->front());
        });
  });
}

// xfrmStatesList / xfrmPoliciesList(opts): the GET dump.
template <typename K>
Napi::Value List(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = OpName<K>("list");
    std::string netns = GetNetns(info, 0, op);
    auto out = std::make_shared<std::vector<typename K::Parsed>>();
    return RunAsync(
        info.Env(),
        [netns, out, op]() { *out = DumpAll<typename K::Parsed>(netns, K::kGet, K::kNew, op, K::Parse); },
        [out](Napi::Env env) -> Napi::Value {
          Out k(env);
          return ToJsArray(env, *out, [&k](Napi::Env env, const typename K::Parsed& p) { return K::ToJs(k, env, p); });
        });
  });
}

// Sends one request (a flush) and resolves undefined once the kernel acknowledged it.
Napi::Value RequestAsync(Napi::Env env, const std::string& netns, const std::string& op, MsgBuilder m) {
  auto msg = std::make_shared<MsgBuilder>(std::move(m));
  return RunAsync(env, [netns, op, msg]() {
    Socket sock(NETLINK_XFRM, netns);
    sock.Request(*msg, op);
  });
}

Napi::Value StatesFlush(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = "xfrm.state.flush";
    std::string netns = GetNetns(info, 0, op);
    return RequestAsync(info.Env(), netns, op, EncodeStatesFlush(ProtoArg(info, 1, op)));
  });
}

Napi::Value PoliciesFlush(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = "xfrm.policy.flush";
    return RequestAsync(info.Env(), GetNetns(info, 0, op), op, EncodePoliciesFlush());
  });
}

// ---------------------------------------------------------------------------------------------
// Encode-only and parse-only exports (synchronous; for the unit tests).

Napi::Value OneMessageJs(Napi::Env env, MsgBuilder m) {
  std::vector<MsgBuilder> msgs;
  msgs.push_back(std::move(m));
  return MessagesToJs(env, msgs);
}

// encodeXfrmStates(states[], update) / encodeXfrmPolicies(packed, count, update).
template <typename K>
Napi::Value EncodeJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto specs = K::Specs(info, 0, OpName<K>("encode"));
    std::vector<MsgBuilder> msgs = EncodeSpecs<K>(*specs, BoolArg(info, K::kSpecArgs));
    Napi::Value out = MessagesToJs(info.Env(), msgs);
    Wipe(msgs);
    return out;
  });
}

// encodeXfrmStateIds / encodeXfrmPolicyIds(ids[], "get"|"delete").
template <typename K>
Napi::Value EncodeIdsJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string op = OpName<K>("encode");
    auto ids = SpecsArg<typename K::Id>(info, 0, op, K::GetId);
    std::vector<MsgBuilder> msgs = EncodeIds<K>(*ids, IdType(info, 1, K::kGet, K::kDel, op));
    return MessagesToJs(info.Env(), msgs);
  });
}

template <typename K>
Napi::Value EncodeDumpJs(const Napi::CallbackInfo& info) {
  return OneMessageJs(info.Env(), EncodeDump(K::kGet));
}

Napi::Value EncodeStatesFlushJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return OneMessageJs(info.Env(), EncodeStatesFlush(ProtoArg(info, 0, "xfrm.state.encode")));
  });
}

Napi::Value EncodePoliciesFlushJs(const Napi::CallbackInfo& info) { return OneMessageJs(info.Env(), EncodePoliciesFlush()); }

// parseXfrmStates / parseXfrmPolicies(buffer): the NEW and UPD messages of the Buffer.
template <typename K>
Napi::Value ParseJs(const Napi::CallbackInfo& info) {
  const std::string op = OpName<K>("parse");
  Out k(info.Env());
  return ParseExport<typename K::Parsed>(
      info, op,
      [&op](const nlmsghdr* r, typename K::Parsed* out) {
        if (r->nlmsg_type != K::kNew && r->nlmsg_type != K::kUpd) return false;
        *out = K::Parse(r, op);
        return true;
      },
      [&k](Napi::Env env, const typename K::Parsed& p) { return K::ToJs(k, env, p); });
}

}  // namespace

void RegisterXfrm(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"xfrmStatesApply", Apply<StateKind>},
             {"xfrmStatesDelete", Delete<StateKind>},
             {"xfrmStateGet", Get<StateKind>},
             {"xfrmStatesList", List<StateKind>},
             {"xfrmStatesFlush", StatesFlush},
             {"xfrmPoliciesApply", Apply<PolicyKind>},
             {"xfrmPoliciesDelete", Delete<PolicyKind>},
             {"xfrmPolicyGet", Get<PolicyKind>},
             {"xfrmPoliciesList", List<PolicyKind>},
             {"xfrmPoliciesFlush", PoliciesFlush},
             {"encodeXfrmStates", EncodeJs<StateKind>},
             {"encodeXfrmStateIds", EncodeIdsJs<StateKind>},
             {"encodeXfrmStatesFlush", EncodeStatesFlushJs},
             {"encodeXfrmStatesDump", EncodeDumpJs<StateKind>},
             {"parseXfrmStates", ParseJs<StateKind>},
             {"encodeXfrmPolicies", EncodeJs<PolicyKind>},
             {"encodeXfrmPolicyIds", EncodeIdsJs<PolicyKind>},
             {"encodeXfrmPoliciesFlush", EncodePoliciesFlushJs},
             {"encodeXfrmPoliciesDump", EncodeDumpJs<PolicyKind>},
             {"parseXfrmPolicies", ParseJs<PolicyKind>}});
}

}  // namespace veil
