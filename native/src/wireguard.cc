#include "wireguard.h"

#include "pack.h"

#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/time_types.h>
#include <linux/wireguard.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <optional>

namespace veil {

namespace {

constexpr const char* kFamilyName = WG_GENL_NAME;
// Interrupted dumps (the peer set changed while it was read) are retried this many times.
constexpr int kDumpAttempts = 5;

constexpr size_t AttrSize(size_t payload) { return NLA_ALIGN(NLA_HDRLEN + payload); }

bool AllZero(const uint8_t* p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
}

// The kernel's reply buffer is ours to clobber: zero a secret we were handed but must not keep.
void ScrubAttr(const Attr& a) { explicit_bzero(const_cast<uint8_t*>(a.data), a.len); }

NlError Malformed(const std::string& what) {
  return MalformedReply("wireguard.parse", "Malformed WireGuard reply: " + what);
}

// An attribute of the wrong size: "<what> of N bytes".
NlError BadSize(const Attr& a, const char* what) {
  return Malformed(std::string(what) + " of " + std::to_string(a.len) + " bytes");
}

// Throws BadSize unless the attribute holds at least `min` bytes.
void NeedLen(const Attr& a, size_t min, const char* what) {
  if (a.len < min) throw BadSize(a, what);
}

// ---------------------------------------------------------------------------------------------
// Encoding

size_t AllowedIpSize(const WgAllowedIp& ip) {
  return NLA_HDRLEN + AttrSize(2) + AttrSize(ip.addr.Len()) + AttrSize(1);
}

uint32_t PeerFlags(const WgPeerSet& p, bool first_fragment) {
  if (p.remove) return WGPEER_F_REMOVE_ME;
  uint32_t f = 0;
  if (p.update_only) f |= WGPEER_F_UPDATE_ONLY;
  if (first_fragment && p.replace_allowed_ips) f |= WGPEER_F_REPLACE_ALLOWEDIPS;
  return f;
}

// Bytes of a peer nest up to (and including) the header of its allowed-IPs nest.
size_t PeerHeaderSize(const WgPeerSet& p, bool first_fragment) {
  size_t n = NLA_HDRLEN + AttrSize(kWgKeyLen);
  if (PeerFlags(p, first_fragment)) n += AttrSize(4);
  if (p.remove) return n;
  if (first_fragment) {
    if (p.has_preshared_key) n += AttrSize(kWgKeyLen);
    if (p.has_endpoint) n += AttrSize(p.endpoint.family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    if (p.has_keepalive) n += AttrSize(2);
  }
  if (!p.allowed_ips.empty()) n += NLA_HDRLEN;
  return n;
}

// Builds the message sequence. Nests are closed (their lengths fixed) before a message is moved
// into the output, so no Nest ever outlives the builder it points into.
class SetEncoder {
 public:
  SetEncoder(const WgDeviceSet& d, uint16_t family, size_t max_bytes, WgSetMessages* out)
      : d_(d), family_(family), max_(max_bytes), out_(out) {}

  void Run() {
    if (d_.has_listen_port) {
      // The listen port goes alone, first: binding it is the one device setting the kernel can
      // refuse at run time (EADDRINUSE), and it applies fwmark before it tries the port, so a
      // port in the same message as anything else could leave that applied.
      Start(false);
      cur_->PutU16(WGDEVICE_A_LISTEN_PORT, d_.listen_port);
      Flush();
      bool more = d_.has_private_key || d_.has_fwmark || d_.replace_peers || !d_.peers.empty();
      if (!more) return;
    }
    Start(true);
    for (size_t i = 0; i < d_.peers.size(); i++) AddPeer(d_.peers[i], static_cast<int>(i));
    Flush();
  }

 private:
  void Start(bool first) {
    cur_ = std::make_unique<MsgBuilder>(family_, NLM_F_REQUEST | NLM_F_ACK);
    // Reserve the whole message up front: a reallocation would leave a copy of the keys in
    // freed memory that explicit_bzero never reaches.
    cur_->Finish().reserve(max_ + 256);
    genlmsghdr g{};
    g.cmd = WG_CMD_SET_DEVICE;
    g.version = WG_GENL_VERSION;
    cur_->Header(g);
    cur_->PutStr(WGDEVICE_A_IFNAME, d_.name);
    range_ = {-1, -1};
    if (!first) return;
    if (d_.replace_peers) cur_->PutU32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
    if (d_.has_private_key) cur_->Put(WGDEVICE_A_PRIVATE_KEY, d_.private_key.bytes.data(), kWgKeyLen);
    if (d_.has_fwmark) cur_->PutU32(WGDEVICE_A_FWMARK, d_.fwmark);
  }

  void Flush() {
    ips_.reset();
    peer_.reset();
    peers_.reset();
    out_->msgs.push_back(std::move(*cur_));
    out_->peer_ranges.push_back(range_);
    cur_.reset();
  }

  size_t Room() const { return cur_->Size() >= max_ ? 0 : max_ - cur_->Size(); }

  void OpenPeer(const WgPeerSet& p, int index, bool first_fragment) {
    if (!peers_) peers_.emplace(*cur_, WGDEVICE_A_PEERS);
    if (range_.first < 0) range_.first = index;
    range_.second = index;
    peer_.emplace(*cur_, 0);
    cur_->Put(WGPEER_A_PUBLIC_KEY, p.public_key.data(), kWgKeyLen);
    uint32_t flags = PeerFlags(p, first_fragment);
    if (flags) cur_->PutU32(WGPEER_A_FLAGS, flags);
    if (p.remove) return;
    if (first_fragment) {
      if (p.has_preshared_key) cur_->Put(WGPEER_A_PRESHARED_KEY, p.preshared_key.bytes.data(), kWgKeyLen);
      if (p.has_endpoint) PutEndpoint(p);
      if (p.has_keepalive) cur_->PutU16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p.keepalive);
    }
    if (!p.allowed_ips.empty()) ips_.emplace(*cur_, WGPEER_A_ALLOWEDIPS);
  }

  void PutEndpoint(const WgPeerSet& p) {
    if (p.endpoint.family == AF_INET6) {
      sockaddr_in6 sa{};
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons(p.endpoint_port);
      std::memcpy(&sa.sin6_addr, p.endpoint.bytes, 16);
      cur_->PutStruct(WGPEER_A_ENDPOINT, sa);
    } else {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(p.endpoint_port);
      std::memcpy(&sa.sin_addr, p.endpoint.bytes, 4);
      cur_->PutStruct(WGPEER_A_ENDPOINT, sa);
    }
  }

  void AddPeer(const WgPeerSet& p, int index) {
    size_t need = PeerHeaderSize(p, true) + (peers_ ? 0 : NLA_HDRLEN);
    if (!p.remove && !p.allowed_ips.empty()) need += AllowedIpSize(p.allowed_ips[0]);
    if (need > Room() && range_.first >= 0) {
      Flush();
      Start(false);
    }
    OpenPeer(p, index, true);
    if (p.remove) {
      peer_.reset();
      return;
    }
    for (const auto& ip : p.allowed_ips) {
      if (AllowedIpSize(ip) > Room()) {
        // Continue this peer in the next message: public key, allowed IPs, and UPDATE_ONLY so a
        // fragment never creates a peer that its first fragment was told not to create.
        Flush();
        Start(false);
        OpenPeer(p, index, false);
      }
      MsgBuilder::Nest one(*cur_, 0);
      cur_->PutU16(WGALLOWEDIP_A_FAMILY, static_cast<uint16_t>(ip.addr.family));
      cur_->Put(WGALLOWEDIP_A_IPADDR, ip.addr.bytes, ip.addr.Len());
      cur_->PutU8(WGALLOWEDIP_A_CIDR_MASK, ip.cidr);
    }
    ips_.reset();
    peer_.reset();
  }

  const WgDeviceSet& d_;
  uint16_t family_;
  size_t max_;
  WgSetMessages* out_;
  std::pair<int, int> range_{-1, -1};
  // Declared in construction order; reset in reverse (innermost first) by Flush().
  std::unique_ptr<MsgBuilder> cur_;
  std::optional<MsgBuilder::Nest> peers_;
  std::optional<MsgBuilder::Nest> peer_;
  std::optional<MsgBuilder::Nest> ips_;
};

// ---------------------------------------------------------------------------------------------
// Parsing

std::string FormatEndpoint(const Attr& a) {
  sa_family_t fam = 0;
  NeedLen(a, sizeof(sockaddr), "endpoint");
  std::memcpy(&fam, a.data, sizeof(fam));
  if (fam == AF_INET) {
    sockaddr_in sa;
    a.As(&sa);
    return FormatAddr(AF_INET, &sa.sin_addr) + ":" + std::to_string(ntohs(sa.sin_port));
  }
  if (fam == AF_INET6) {
    sockaddr_in6 sa;
    if (!a.As(&sa)) throw BadSize(a, "IPv6 endpoint");
    // Built with append rather than `"[" + ...`: GCC 12 reports a false -Wrestrict on that form.
    std::string out = "[";
    out.append(FormatAddr(AF_INET6, &sa.sin6_addr)).append("]:").append(std::to_string(ntohs(sa.sin6_port)));
    return out;
  }
  throw Malformed("endpoint of address family " + std::to_string(fam));
}

std::string ParseAllowedIp(const Attr& nest) {
  int family = -1;
  const Attr* addr = nullptr;
  Attr addr_copy{};
  int cidr = -1;
  bool ok = ForEachAttr(nest.data, nest.len, [&](const Attr& a) {
    switch (a.type) {
      case WGALLOWEDIP_A_FAMILY:
        NeedLen(a, 2, "allowed IP family attribute");
        family = a.U16();
        break;
      case WGALLOWEDIP_A_IPADDR:
        addr_copy = a;
        addr = &addr_copy;
        break;
      case WGALLOWEDIP_A_CIDR_MASK:
        if (a.len < 1) throw Malformed("empty allowed IP prefix length");
        cidr = a.U8();
        break;
      default:
        break;
    }
  });
  if (!ok) throw Malformed("truncated allowed IP");
  if (family != AF_INET && family != AF_INET6) throw Malformed("allowed IP of family " + std::to_string(family));
  size_t alen = family == AF_INET ? 4 : 16;
  int max = family == AF_INET ? 32 : 128;
  if (!addr || addr->len < alen) throw Malformed("allowed IP without a complete address");
  if (cidr < 0 || cidr > max) throw Malformed("allowed IP prefix length " + std::to_string(cidr));
  return FormatAddr(family, addr->data) + "/" + std::to_string(cidr);
}

}  // namespace

void WgSetMessages::Scrub() {
  for (auto& m : msgs) {
    // A moved-from builder holds no buffer at all.
    if (m.Bytes().size() < NLMSG_HDRLEN) continue;
    auto& b = m.Finish();
    explicit_bzero(b.data(), b.size());
  }
}

void EncodeWgSetDevice(const WgDeviceSet& d, uint16_t family, size_t max_bytes, WgSetMessages* out) {
  SetEncoder(d, family, max_bytes, out).Run();
}

MsgBuilder EncodeWgGetDevice(const std::string& name, uint16_t family) {
  MsgBuilder m(family, NLM_F_REQUEST | NLM_F_DUMP);
  genlmsghdr g{};
  g.cmd = WG_CMD_GET_DEVICE;
  g.version = WG_GENL_VERSION;
  m.Header(g);
  m.PutStr(WGDEVICE_A_IFNAME, name);
  return m;
}

void WgDeviceParser::AddPeer(const Attr& nest) {
  WgPeerOut p;
  bool has_key = false;
  bool ok = ForEachAttr(nest.data, nest.len, [&](const Attr& a) {
    switch (a.type) {
      case WGPEER_A_PUBLIC_KEY:
        if (a.len != kWgKeyLen) throw BadSize(a, "peer public key");
        std::memcpy(p.public_key.data(), a.data, kWgKeyLen);
        has_key = true;
        break;
      case WGPEER_A_PRESHARED_KEY:
        p.has_preshared_key = !AllZero(a.data, a.len);
        ScrubAttr(a);
        break;
      case WGPEER_A_ENDPOINT:
        p.endpoint = FormatEndpoint(a);
        break;
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
        NeedLen(a, 2, "keepalive attribute");
        p.keepalive = a.U16();
        break;
      case WGPEER_A_LAST_HANDSHAKE_TIME: {
        __kernel_timespec ts;
        if (!a.As(&ts)) throw BadSize(a, "handshake time");
        p.handshake_sec = ts.tv_sec;
        p.handshake_nsec = ts.tv_nsec;
        break;
      }
      case WGPEER_A_RX_BYTES:
        NeedLen(a, 8, "rx bytes attribute");
        p.rx_bytes = a.U64();
        break;
      case WGPEER_A_TX_BYTES:
        NeedLen(a, 8, "tx bytes attribute");
        p.tx_bytes = a.U64();
        break;
      case WGPEER_A_PROTOCOL_VERSION:
        NeedLen(a, 4, "protocol version attribute");
        p.protocol_version = a.U32();
        break;
      case WGPEER_A_ALLOWEDIPS: {
        bool ips_ok = ForEachAttr(a.data, a.len, [&](const Attr& ip) { p.allowed_ips.push_back(ParseAllowedIp(ip)); });
        if (!ips_ok) throw Malformed("truncated allowed IP list");
        break;
      }
      default:
        break;
    }
  });
  if (!ok) throw Malformed("truncated peer");
  if (!has_key) throw Malformed("peer without a public key");
  // A peer whose allowed IPs did not fit in one message continues, with only its public key and
  // allowed IPs, at the start of the next: coalesce adjacent entries of the same peer.
  if (!dev_.peers.empty() && dev_.peers.back().public_key == p.public_key) {
    WgPeerOut& last = dev_.peers.back();
    last.allowed_ips.insert(last.allowed_ips.end(), p.allowed_ips.begin(), p.allowed_ips.end());
    return;
  }
  dev_.peers.push_back(std::move(p));
}

void WgDeviceParser::Add(const nlmsghdr* nlh) {
  if (nlh->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) throw Malformed("message shorter than its genl header");
  genlmsghdr g;
  std::memcpy(&g, NLMSG_DATA(nlh), sizeof(g));
  if (g.cmd != WG_CMD_GET_DEVICE) throw Malformed("unexpected command " + std::to_string(g.cmd));
  bool ok = ForEachMsgAttr(nlh, GENL_HDRLEN, [&](const Attr& a) {
    switch (a.type) {
      case WGDEVICE_A_IFINDEX:
        NeedLen(a, 4, "ifindex attribute");
        if (!dev_.ifindex) dev_.ifindex = a.U32();
        dev_.seen = true;
        break;
      case WGDEVICE_A_IFNAME:
        if (dev_.name.empty()) dev_.name = a.Str();
        dev_.seen = true;
        break;
      case WGDEVICE_A_PRIVATE_KEY:
        dev_.has_private_key = !AllZero(a.data, a.len);
        ScrubAttr(a);
        break;
      case WGDEVICE_A_PUBLIC_KEY:
        if (a.len != kWgKeyLen) throw BadSize(a, "device public key");
        std::memcpy(dev_.public_key.data(), a.data, kWgKeyLen);
        dev_.has_public_key = !AllZero(a.data, a.len);
        break;
      case WGDEVICE_A_LISTEN_PORT:
        NeedLen(a, 2, "listen port attribute");
        dev_.listen_port = a.U16();
        break;
      case WGDEVICE_A_FWMARK:
        NeedLen(a, 4, "fwmark attribute");
        dev_.fwmark = a.U32();
        break;
      case WGDEVICE_A_PEERS: {
        bool peers_ok = ForEachAttr(a.data, a.len, [&](const Attr& peer) { AddPeer(peer); });
        if (!peers_ok) throw Malformed("truncated peer list");
        break;
      }
      default:
        break;
    }
  });
  if (!ok) throw Malformed("truncated device attribute");
}

WgDeviceOut WgDeviceParser::Finish() {
  if (!dev_.seen) throw Malformed("no message named the device");
  return std::move(dev_);
}

// ---------------------------------------------------------------------------------------------
// JavaScript conversion (main thread)

namespace {

std::string GetName(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
  if (info.Length() <= index || !info[index].IsString()) throw InvalidArg(op, "Device name must be a string");
  std::string name = info[index].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= 16) {
    throw InvalidArg(op, "Device name must be 1 to 15 bytes: \"" + name.substr(0, 64) + "\"");
  }
  return name;
}

// Packed records from agent/wireguard/pack.ts (layouts documented there). TypeScript validated
// them; every count, flag and range is checked again here, and keys are copied straight into
// their (self-zeroing) destinations.
constexpr size_t kWgDeviceRecord = 44;
constexpr size_t kWgPeerRecord = 96;
constexpr size_t kWgAllowedIpRecord = 20;
constexpr uint32_t kDevPrivateKey = 1, kDevListenPort = 2, kDevFwmark = 4, kDevReplacePeers = 8;
constexpr uint32_t kPeerRemove = 1, kPeerUpdateOnly = 2, kPeerReplaceIps = 4, kPeerPresharedKey = 8,
                   kPeerEndpoint = 16, kPeerEndpointV6 = 32, kPeerKeepalive = 64;

uint16_t PackedU16(const RecordReader& r, size_t i, size_t off, const std::string& op, const char* what) {
  uint32_t v = r.U32(i, off);
  if (v > 0xffff) throw InvalidArg(op, std::string("Packed ") + what + " " + std::to_string(v) + " exceeds 65535");
  return static_cast<uint16_t>(v);
}

// Arguments first..first+3 of wgSetDevice / encodeWgSetDevice: name, device, peers, allowed IPs.
std::shared_ptr<WgDeviceSet> PackedDeviceSet(const Napi::CallbackInfo& info, size_t first, const std::string& op) {
  auto d = std::make_shared<WgDeviceSet>();
  d->name = GetName(info, first, op);
  RecordReader dev(info[first + 1], kWgDeviceRecord, op);
  if (dev.Count() != 1) throw InvalidArg(op, "Expected exactly one packed device record");
  uint32_t df = dev.U32(0, 32);
  if (df & ~(kDevPrivateKey | kDevListenPort | kDevFwmark | kDevReplacePeers)) {
    throw InvalidArg(op, "Packed device record has unknown flags");
  }
  d->has_private_key = df & kDevPrivateKey;
  if (d->has_private_key) std::memcpy(d->private_key.bytes.data(), dev.Field(0, 0, kWgKeyLen), kWgKeyLen);
  d->has_listen_port = df & kDevListenPort;
  if (d->has_listen_port) d->listen_port = PackedU16(dev, 0, 36, op, "listen port");
  d->has_fwmark = df & kDevFwmark;
  if (d->has_fwmark) d->fwmark = dev.U32(0, 40);
  d->replace_peers = df & kDevReplacePeers;

  RecordReader peers(info[first + 2], kWgPeerRecord, op);
  RecordReader ips(info[first + 3], kWgAllowedIpRecord, op);
  d->peers.resize(peers.Count());
  size_t next = 0;  // the next allowed IP record
  for (size_t i = 0; i < peers.Count(); i++) {
    WgPeerSet& p = d->peers[i];
    std::memcpy(p.public_key.data(), peers.Field(i, 0, kWgKeyLen), kWgKeyLen);
    uint32_t f = peers.U32(i, 64);
    if (f & ~(kPeerRemove | kPeerUpdateOnly | kPeerReplaceIps | kPeerPresharedKey | kPeerEndpoint | kPeerEndpointV6 |
              kPeerKeepalive)) {
      throw InvalidArg(op, "Packed peer " + std::to_string(i) + " has unknown flags");
    }
    uint32_t count = peers.U32(i, 76);
    if (count > ips.Count() - next) {
      throw InvalidArg(op, "Packed peer " + std::to_string(i) + " names more allowed IPs than were packed");
    }
    p.remove = f & kPeerRemove;
    if (p.remove && (f != kPeerRemove || count != 0)) {
      throw InvalidArg(op, "Packed peer " + std::to_string(i) + " is removed but carries other settings");
    }
    p.update_only = f & kPeerUpdateOnly;
    p.replace_allowed_ips = f & kPeerReplaceIps;
    p.has_preshared_key = f & kPeerPresharedKey;
    if (p.has_preshared_key) std::memcpy(p.preshared_key.bytes.data(), peers.Field(i, 32, kWgKeyLen), kWgKeyLen);
    p.has_endpoint = f & kPeerEndpoint;
    if (p.has_endpoint) {
      p.endpoint.family = (f & kPeerEndpointV6) ? AF_INET6 : AF_INET;
      std::memcpy(p.endpoint.bytes, peers.Field(i, 80, p.endpoint.Len()), p.endpoint.Len());
      p.endpoint_port = PackedU16(peers, i, 72, op, "endpoint port");
      if (p.endpoint_port == 0) throw InvalidArg(op, "Packed peer " + std::to_string(i) + " has endpoint port 0");
    } else if (f & kPeerEndpointV6) {
      throw InvalidArg(op, "Packed peer " + std::to_string(i) + " has an endpoint family but no endpoint");
    }
    p.has_keepalive = f & kPeerKeepalive;
    if (p.has_keepalive) p.keepalive = PackedU16(peers, i, 68, op, "keepalive");
    p.allowed_ips.resize(count);
    for (uint32_t j = 0; j < count; j++, next++) {
      WgAllowedIp& ip = p.allowed_ips[j];
      uint8_t fam = ips.U8(next, 16);
      uint8_t len = ips.U8(next, 17);
      if ((fam != 4 && fam != 6) || len > (fam == 4 ? 32 : 128)) {
        throw InvalidArg(op, "Packed allowed IP " + std::to_string(next) + " has family " + std::to_string(fam) +
                                 " and prefix length " + std::to_string(len));
      }
      ip.addr.family = fam == 4 ? AF_INET : AF_INET6;
      std::memcpy(ip.addr.bytes, ips.Field(next, 0, ip.addr.Len()), ip.addr.Len());
      ip.cidr = len;
    }
  }
  if (next != ips.Count()) throw InvalidArg(op, "Packed allowed IPs that no peer names");
  return d;
}

// Optional encode-export options: { familyId?: number, maxMessageBytes?: number }.
void GetEncodeOptions(const Napi::CallbackInfo& info, size_t index, const std::string& op, uint16_t* family,
                      size_t* max_bytes) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return;
  if (!info[index].IsObject()) throw InvalidArg(op, "Options must be an object");
  Napi::Object o = info[index].As<Napi::Object>();
  uint32_t f = GetU32(o, "familyId", op, false, *family);
  if (f > 0xffff) throw InvalidArg(op, "Field \"familyId\" must be between 0 and 65535");
  *family = static_cast<uint16_t>(f);
  if (max_bytes) {
    uint32_t m = GetU32(o, "maxMessageBytes", op, false, static_cast<uint32_t>(*max_bytes));
    if (m < kWgMinMessageBytes || m > 65000) {
      throw InvalidArg(op, "Field \"maxMessageBytes\" must be between " + std::to_string(kWgMinMessageBytes) +
                               " and 65000");
    }
    *max_bytes = m;
  }
}

Napi::Value KeyToJs(Napi::Env env, const std::array<uint8_t, kWgKeyLen>& k) {
  return Napi::Buffer<uint8_t>::Copy(env, k.data(), k.size());
}

Napi::Value DeviceToJs(Napi::Env env, const WgDeviceOut& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", d.name);
  o.Set("ifindex", Napi::Number::New(env, d.ifindex));
  o.Set("publicKey", d.has_public_key ? KeyToJs(env, d.public_key) : env.Null());
  o.Set("hasPrivateKey", Napi::Boolean::New(env, d.has_private_key));
  o.Set("listenPort", Napi::Number::New(env, d.listen_port));
  o.Set("fwmark", Napi::Number::New(env, d.fwmark));
  Napi::Array peers = Napi::Array::New(env, d.peers.size());
  for (size_t i = 0; i < d.peers.size(); i++) {
    const WgPeerOut& p = d.peers[i];
    Napi::Object po = Napi::Object::New(env);
    po.Set("publicKey", KeyToJs(env, p.public_key));
    po.Set("hasPresharedKey", Napi::Boolean::New(env, p.has_preshared_key));
    po.Set("endpoint", p.endpoint.empty() ? env.Null() : Napi::String::New(env, p.endpoint));
    po.Set("persistentKeepalive", Napi::Number::New(env, p.keepalive));
    Napi::Array ips = Napi::Array::New(env, p.allowed_ips.size());
    for (size_t j = 0; j < p.allowed_ips.size(); j++) ips.Set(j, p.allowed_ips[j]);
    po.Set("allowedIps", ips);
    if (p.handshake_sec == 0 && p.handshake_nsec == 0) {
      po.Set("lastHandshakeMs", env.Null());
    } else {
      double ms = static_cast<double>(p.handshake_sec) * 1000.0 + static_cast<double>(p.handshake_nsec / 1000000);
      po.Set("lastHandshakeMs", Napi::Number::New(env, ms));
    }
    po.Set("rxBytes", Napi::BigInt::New(env, p.rx_bytes));
    po.Set("txBytes", Napi::BigInt::New(env, p.tx_bytes));
    po.Set("protocolVersion", Napi::Number::New(env, p.protocol_version));
    peers.Set(i, po);
  }
  o.Set("peers", peers);
  return o;
}

// wgAvailable({netns}) -> Promise<boolean>: whether the "wireguard" genl family resolves.
Napi::Value WgAvailable(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    std::string netns = GetNetns(info, 0, "wireguard.available");
    auto found = std::make_shared<bool>(false);
    return RunAsync(
        info.Env(),
        [netns, found]() {
          Socket s(NETLINK_GENERIC, netns);
          try {
            s.ResolveGenlFamily(kFamilyName);
            *found = true;
          } catch (const NlError& e) {
            if (e.err != ENOENT) throw;
          }
        },
        [found](Napi::Env env) { return Napi::Boolean::New(env, *found); });
  });
}

// wgGetDevice({netns}, name) -> Promise<device>.
// Command-line equivalent: `wg show NAME dump` (without the keys it would print).
Napi::Value WgGetDevice(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.get";
    std::string netns = GetNetns(info, 0, op);
    std::string name = GetName(info, 1, op);
    auto out = std::make_shared<WgDeviceOut>();
    return RunAsync(
        info.Env(),
        [netns, name, out, op]() {
          Socket s(NETLINK_GENERIC, netns);
          uint16_t family = s.ResolveGenlFamily(kFamilyName);
          for (int attempt = 1;; attempt++) {
            WgDeviceParser parser;
            MsgBuilder m = EncodeWgGetDevice(name, family);
            try {
              s.Dump(m, op, [&](const nlmsghdr* r) { parser.Add(r); });
              *out = parser.Finish();
              return;
            } catch (const NlError& e) {
              if (e.err != kErrDumpInterrupted || attempt >= kDumpAttempts) throw;
            }
          }
        },
        [out](Napi::Env env) { return DeviceToJs(env, *out); });
  });
}

// wgSetDevice({netns}, name, device, peers, allowedIps) -> Promise<{ messages }>, the records of
// agent/wireguard/pack.ts (copied before this returns; the caller then zeroes them).
// Command-line equivalent: `wg set NAME private-key FILE listen-port N fwmark M peer KEY
// [remove] [preshared-key FILE] [endpoint IP:PORT] [persistent-keepalive S] [allowed-ips CIDRS]`
// (`wg setconf NAME FILE` for replacePeers).
//
// The kernel applies one message in order (fwmark, listen port, replace-peers, private key,
// then peer by peer) and stops at the first error, keeping what it applied before it: a message
// is not atomic. So the messages are sent in this order:
//  1. the listen port alone, when set: the one setting the kernel can refuse after validation in
//     TypeScript (EADDRINUSE; EPERM without CAP_NET_ADMIN over the creating namespace). Refused,
//     nothing at all has changed.
//  2. the other device attributes, WGDEVICE_F_REPLACE_PEERS and the first peers, alone: a missing
//     device or a refused fwmark (EPERM) stops the call before any later peer is applied.
//  3. the rest, pipelined.
// Remaining limit: a failure after step 1 (after validation only resource exhaustion, the
// device vanishing or the kernel's peer limit) leaves the new listen port and every request
// before the failing one applied, plus what the kernel applied of the failing request before
// its error (and, pipelined, requests already in flight after it). Nothing is rolled back: that
// would need the old state, could fail itself, and could not restore removed peers' sessions.
// The error says which request failed and how many were applied.
Napi::Value WgSetDevice(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.set";
    std::string netns = GetNetns(info, 0, op);
    std::shared_ptr<WgDeviceSet> cfg = PackedDeviceSet(info, 1, op);
    auto count = std::make_shared<size_t>(0);
    return RunAsync(
        info.Env(),
        [netns, cfg, count, op]() {
          Socket s(NETLINK_GENERIC, netns);
          uint16_t family = s.ResolveGenlFamily(kFamilyName);
          WgSetMessages m;
          EncodeWgSetDevice(*cfg, family, kWgMaxMessageBytes, &m);
          *count = m.msgs.size();
          const size_t n = m.msgs.size();
          auto describe = [&](NlError e, size_t idx, size_t applied) {
            if (n <= 1) return e;
            auto [first, last] = m.peer_ranges[idx];
            e.index = static_cast<int>(idx);
            e.detail += "; request " + std::to_string(idx + 1) + " of " + std::to_string(n);
            if (first >= 0) e.detail += " (peers " + std::to_string(first) + ".." + std::to_string(last) + ")";
            e.detail += " failed, " + std::to_string(applied) + " earlier request(s) were applied";
            return e;
          };
          // Steps 1 and 2 above: one request at a time, each acknowledged before the next.
          const size_t alone = std::min(n, cfg->has_listen_port ? size_t{2} : size_t{1});
          for (size_t i = 0; i < alone; i++) {
            try {
              s.Request(m.msgs[i], op);
            } catch (const NlError& e) {
              throw describe(e, i, i);
            }
          }
          if (n == alone) return;
          WgSetMessages rest;
          for (size_t i = alone; i < n; i++) rest.msgs.push_back(std::move(m.msgs[i]));
          std::vector<bool> applied;
          NlError err(0, op, "");
          int failed = s.Batch(rest.msgs, op, true, &applied, &err);
          if (failed >= 0) {
            size_t ok = alone;
            for (size_t i = 0; i < static_cast<size_t>(failed); i++) ok += applied[i] ? 1 : 0;
            throw describe(err, static_cast<size_t>(failed) + alone, ok);
          }
        },
        [count](Napi::Env env) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("messages", Napi::Number::New(env, static_cast<double>(*count)));
          return o;
        });
  });
}

// encodeWgSetDevice(name, device, peers, allowedIps, { familyId?, maxMessageBytes? }) -> Buffer[]:
// the exact messages wgSetDevice would send (seq/pid 0).
Napi::Value EncodeWgSetDeviceJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.encode";
    uint16_t family = 0;
    size_t max_bytes = kWgMaxMessageBytes;
    GetEncodeOptions(info, 4, op, &family, &max_bytes);
    auto cfg = PackedDeviceSet(info, 0, op);
    WgSetMessages m;
    EncodeWgSetDevice(*cfg, family, max_bytes, &m);
    return MessagesToJs(info.Env(), m.msgs);
  });
}

// encodeWgGetDevice(name, { familyId? }) -> Buffer[].
Napi::Value EncodeWgGetDeviceJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.encode";
    std::string name = GetName(info, 0, op);
    uint16_t family = 0;
    GetEncodeOptions(info, 1, op, &family, nullptr);
    std::vector<MsgBuilder> msgs;
    msgs.push_back(EncodeWgGetDevice(name, family));
    return MessagesToJs(info.Env(), msgs);
  });
}

// parseWgDevice(Buffer[]) -> device: merges the messages of a get-device dump.
Napi::Value ParseWgDeviceJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.parse";
    if (info.Length() < 1 || !info[0].IsArray()) throw InvalidArg(op, "Expected an array of Buffers");
    Napi::Array arr = info[0].As<Napi::Array>();
    WgDeviceParser parser;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      ForEachMessageInBuffer(arr.Get(i), op, [&](const nlmsghdr* r) {
        if (r->nlmsg_type == NLMSG_DONE || r->nlmsg_type == NLMSG_NOOP) return;
        parser.Add(r);
      });
    }
    return DeviceToJs(info.Env(), parser.Finish());
  });
}

}  // namespace

void RegisterWireGuard(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "wgAvailable", WgAvailable);
  Export(env, exports, "wgGetDevice", WgGetDevice);
  Export(env, exports, "wgSetDevice", WgSetDevice);
  Export(env, exports, "encodeWgSetDevice", EncodeWgSetDeviceJs);
  Export(env, exports, "encodeWgGetDevice", EncodeWgGetDeviceJs);
  Export(env, exports, "parseWgDevice", ParseWgDeviceJs);
}

}  // namespace veil
