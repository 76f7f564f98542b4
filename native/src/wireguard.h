// WireGuard over generic netlink (family "wireguard", uapi linux/wireguard.h): get device (a dump
// whose peers and allowed IPs are spread over several messages, merged here) and set device
// (large peer sets split across several messages of bounded size, sent pipelined).
//
// Private and preshared keys travel into the kernel only. Every buffer that held one is zeroed
// (explicit_bzero) after use, and the parser reports only whether a key is set.
#pragma once

#include <napi.h>
#include <string.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "js.h"
#include "netlink.h"

namespace veil {

constexpr size_t kWgKeyLen = 32;

// Upper bound of one WG_CMD_SET_DEVICE message. The kernel accepts larger messages, but the
// WGDEVICE_A_PEERS nest length is 16 bits, so one message must stay below 64 KiB; 32 KiB holds
// about 250 peers with one allowed IP each, so 5,000 peers take about 20 pipelined messages.
constexpr size_t kWgMaxMessageBytes = 32 * 1024;
// Smallest bound accepted (tests use small bounds to force splits): room for the device
// attributes, one complete peer header and one allowed IP, so every message makes progress.
constexpr size_t kWgMinMessageBytes = 512;

// A key that zeroes itself when destroyed.
struct WgSecret {
  std::array<uint8_t, kWgKeyLen> bytes{};
  WgSecret() = default;
  WgSecret(const WgSecret&) = default;
  WgSecret& operator=(const WgSecret&) = default;
  ~WgSecret() { explicit_bzero(bytes.data(), bytes.size()); }
};

struct WgAllowedIp {
  Addr addr;
  uint8_t cidr = 0;
};

struct WgPeerSet {
  std::array<uint8_t, kWgKeyLen> public_key{};
  bool remove = false;
  bool update_only = false;
  bool replace_allowed_ips = false;
  bool has_preshared_key = false;  // set (zeros clear it)
  WgSecret preshared_key;
  bool has_endpoint = false;
  Addr endpoint;
  uint16_t endpoint_port = 0;
  bool has_keepalive = false;
  uint16_t keepalive = 0;
  std::vector<WgAllowedIp> allowed_ips;
};

struct WgDeviceSet {
  std::string name;
  bool has_private_key = false;  // set (zeros remove it)
  WgSecret private_key;
  bool has_listen_port = false;
  uint16_t listen_port = 0;
  bool has_fwmark = false;
  uint32_t fwmark = 0;
  bool replace_peers = false;
  std::vector<WgPeerSet> peers;
};

// The messages of one set-device request and, per message, the range [first, last] of config
// peers it carries (first = -1 when it carries none).
struct WgSetMessages {
  std::vector<MsgBuilder> msgs;
  std::vector<std::pair<int, int>> peer_ranges;
  // Zeroes every message buffer (they hold private and preshared keys).
  void Scrub();
  ~WgSetMessages() { Scrub(); }
};

// Encodes WG_CMD_SET_DEVICE. A listen port goes alone in a message of its own, first (the one
// device setting the kernel can refuse at run time; see WgSetDevice). The other device
// attributes and WGDEVICE_F_REPLACE_PEERS go in the next message only; a peer split across messages carries WGPEER_F_REPLACE_ALLOWEDIPS, its preshared
// key, endpoint and keepalive only in its first fragment (later fragments: public key, allowed
// IPs and WGPEER_F_UPDATE_ONLY when the peer had it).
void EncodeWgSetDevice(const WgDeviceSet& d, uint16_t family, size_t max_bytes, WgSetMessages* out);

// Encodes the WG_CMD_GET_DEVICE dump request.
MsgBuilder EncodeWgGetDevice(const std::string& name, uint16_t family);

struct WgPeerOut {
  std::array<uint8_t, kWgKeyLen> public_key{};
  bool has_preshared_key = false;
  std::string endpoint;  // "" when none
  uint16_t keepalive = 0;
  int64_t handshake_sec = 0;
  int64_t handshake_nsec = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
  uint32_t protocol_version = 0;
  std::vector<std::string> allowed_ips;
};

struct WgDeviceOut {
  bool seen = false;
  uint32_t ifindex = 0;
  std::string name;
  bool has_public_key = false;
  std::array<uint8_t, kWgKeyLen> public_key{};
  bool has_private_key = false;
  uint16_t listen_port = 0;
  uint32_t fwmark = 0;
  std::vector<WgPeerOut> peers;
};

// Merges the messages of a WG_CMD_GET_DEVICE dump into one device. Validates every length and
// throws NlError(kErrMalformedReply) on anything malformed. Key attributes it must not keep
// (private and preshared keys) are zeroed in place in the message after reading whether set.
class WgDeviceParser {
 public:
  void Add(const nlmsghdr* nlh);
  // The merged device; throws kErrMalformedReply when no message described a device.
  WgDeviceOut Finish();

 private:
  void AddPeer(const Attr& nest);
  WgDeviceOut dev_;
};

// Adds this family's exports to the addon's export table.
void RegisterWireGuard(Napi::Env env, Napi::Object exports);

}  // namespace veil
