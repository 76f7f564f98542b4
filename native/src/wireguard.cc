#include "wireguard.h"

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
    return "[" + FormatAddr(AF_INET6, &sa.sin6_addr) + "]:" + std::to_string(ntohs(sa.sin6_port));
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

bool IsNull(const Napi::Object& o, const char* key) { return o.Has(key) && o.Get(key).IsNull(); }

void GetSecret(const Napi::Object& o, const char* key, const std::string& op, bool* has, WgSecret* out) {
  if (IsNull(o, key)) {
    *has = true;  // all zeros: remove the key
    return;
  }
  if (!Has(o, key)) return;
  std::vector<uint8_t> v = GetBytes(o, key, op, kWgKeyLen);
  std::memcpy(out->bytes.data(), v.data(), kWgKeyLen);
  explicit_bzero(v.data(), v.size());
  *has = true;
}

uint16_t GetU16(const Napi::Object& o, const char* key, const std::string& op) {
  uint32_t v = GetU32(o, key, op, true);
  if (v > 0xffff) throw InvalidArg(op, std::string("Field \"") + key + "\" must be between 0 and 65535");
  return static_cast<uint16_t>(v);
}

// "192.0.2.1:51820" or "[2001:db8::1]:51820".
void ParseEndpoint(const std::string& s, const std::string& op, Addr* addr, uint16_t* port) {
  std::string host, port_text;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      throw InvalidArg(op, "Field \"endpoint\" must be \"[IPv6]:port\": \"" + s.substr(0, 64) + "\"");
    }
    host = s.substr(1, close - 1);
    port_text = s.substr(close + 2);
    *addr = ParseAddr(host, op, "endpoint");
    if (addr->family != AF_INET6) throw InvalidArg(op, "Field \"endpoint\" has an IPv4 address in brackets");
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) {
      throw InvalidArg(op, "Field \"endpoint\" must be \"IPv4:port\": \"" + s.substr(0, 64) + "\"");
    }
    host = s.substr(0, colon);
    port_text = s.substr(colon + 1);
    *addr = ParseAddr(host, op, "endpoint");
    if (addr->family != AF_INET) throw InvalidArg(op, "Field \"endpoint\" needs brackets around an IPv6 address");
  }
  uint32_t p = 0;
  if (port_text.empty() || port_text.size() > 5) throw InvalidArg(op, "Field \"endpoint\" has no valid port");
  for (char c : port_text) {
    if (c < '0' || c > '9') throw InvalidArg(op, "Field \"endpoint\" has no valid port");
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p == 0 || p > 65535) throw InvalidArg(op, "Field \"endpoint\" port must be between 1 and 65535");
  *port = static_cast<uint16_t>(p);
}

WgAllowedIp ParseAllowedIpText(const std::string& s, const std::string& op) {
  size_t slash = s.find('/');
  if (slash == std::string::npos || slash + 1 >= s.size() || s.size() - slash > 4) {
    throw InvalidArg(op, "Allowed IP must be \"address/prefix\": \"" + s.substr(0, 64) + "\"");
  }
  WgAllowedIp ip;
  ip.addr = ParseAddr(s.substr(0, slash), op, "allowedIps");
  unsigned v = 0;
  for (char c : s.substr(slash + 1)) {
    if (c < '0' || c > '9') throw InvalidArg(op, "Allowed IP prefix is not a number: \"" + s.substr(0, 64) + "\"");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > (ip.addr.family == AF_INET ? 32u : 128u)) {
    throw InvalidArg(op, "Allowed IP prefix is too long: \"" + s.substr(0, 64) + "\"");
  }
  ip.cidr = static_cast<uint8_t>(v);
  return ip;
}

std::shared_ptr<WgDeviceSet> ToDeviceSet(const Napi::Object& o, const std::string& op) {
  auto d = std::make_shared<WgDeviceSet>();
  d->name = GetString(o, "name", op);
  if (d->name.empty() || d->name.size() >= 16) {
    throw InvalidArg(op, "Field \"name\" must be 1 to 15 bytes: \"" + d->name.substr(0, 64) + "\"");
  }
  GetSecret(o, "privateKey", op, &d->has_private_key, &d->private_key);
  if (Has(o, "listenPort")) {
    d->has_listen_port = true;
    d->listen_port = GetU16(o, "listenPort", op);
  }
  if (Has(o, "fwmark")) {
    d->has_fwmark = true;
    d->fwmark = GetU32(o, "fwmark", op, true);
  }
  d->replace_peers = GetBool(o, "replacePeers", op);
  Napi::Array peers = GetArray(o, "peers", op, false);
  d->peers.resize(peers.Length());
  for (uint32_t i = 0; i < peers.Length(); i++) {
    Napi::Value pv = peers.Get(i);
    if (!pv.IsObject()) throw InvalidArg(op, "Peer " + std::to_string(i) + " must be an object");
    Napi::Object po = pv.As<Napi::Object>();
    WgPeerSet& p = d->peers[i];
    std::vector<uint8_t> pk = GetBytes(po, "publicKey", op, kWgKeyLen);
    std::memcpy(p.public_key.data(), pk.data(), kWgKeyLen);
    p.remove = GetBool(po, "remove", op);
    p.update_only = GetBool(po, "updateOnly", op);
    p.replace_allowed_ips = GetBool(po, "replaceAllowedIps", op);
    GetSecret(po, "presharedKey", op, &p.has_preshared_key, &p.preshared_key);
    if (Has(po, "endpoint")) {
      p.has_endpoint = true;
      ParseEndpoint(GetString(po, "endpoint", op), op, &p.endpoint, &p.endpoint_port);
    }
    if (Has(po, "persistentKeepalive")) {
      p.has_keepalive = true;
      p.keepalive = GetU16(po, "persistentKeepalive", op);
    }
    Napi::Array ips = GetArray(po, "allowedIps", op, false);
    p.allowed_ips.reserve(ips.Length());
    for (uint32_t j = 0; j < ips.Length(); j++) {
      Napi::Value v = ips.Get(j);
      if (!v.IsString()) throw InvalidArg(op, "Allowed IPs must be strings");
      p.allowed_ips.push_back(ParseAllowedIpText(v.As<Napi::String>().Utf8Value(), op));
    }
  }
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

std::string GetName(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
  if (info.Length() <= index || !info[index].IsString()) throw InvalidArg(op, "Device name must be a string");
  std::string name = info[index].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= 16) {
    throw InvalidArg(op, "Device name must be 1 to 15 bytes: \"" + name.substr(0, 64) + "\"");
  }
  return name;
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

// wgSetDevice({netns}, config) -> Promise<{ messages }>.
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
    if (info.Length() < 2 || !info[1].IsObject()) throw InvalidArg(op, "Configuration must be an object");
    std::shared_ptr<WgDeviceSet> cfg = ToDeviceSet(info[1].As<Napi::Object>(), op);
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

// encodeWgSetDevice(config, { familyId?, maxMessageBytes? }) -> Buffer[]: the exact messages
// wgSetDevice would send (seq/pid 0).
Napi::Value EncodeWgSetDeviceJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "wireguard.encode";
    if (info.Length() < 1 || !info[0].IsObject()) throw InvalidArg(op, "Configuration must be an object");
    uint16_t family = 0;
    size_t max_bytes = kWgMaxMessageBytes;
    GetEncodeOptions(info, 1, op, &family, &max_bytes);
    auto cfg = ToDeviceSet(info[0].As<Napi::Object>(), op);
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
