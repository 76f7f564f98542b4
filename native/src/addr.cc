#include "addr.h"

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <map>
#include <memory>

#include "family.h"
#include "js.h"
#include "link.h"

namespace veil {

namespace {

// An address to add or delete, converted from JS on the main thread.
struct AddrC {
  std::string dev;
  uint32_t ifindex = 0;  // resolved by the worker from dev (or given to the encode export)
  Addr local;
  uint8_t prefixLen = 0;
  Addr peer;       // family 0 = none
  Addr broadcast;  // family 0 = none
  std::string label;
  uint8_t scope = RT_SCOPE_UNIVERSE;
  uint32_t flags = 0;  // IFA_F_*
};

// An address as read from the kernel.
struct AddrInfoC {
  uint8_t family = 0;
  uint8_t prefixLen = 0;
  uint8_t scope = 0;
  uint32_t ifindex = 0;
  uint32_t flags = 0;
  Addr address;
  Addr local;
  Addr broadcast;
  std::string label;
};

// `ip addr add|del A/P dev D [peer X] [broadcast B] [label L] [scope S] [noprefixroute] [nodad]`
MsgBuilder EncodeAddr(const AddrC& a, uint16_t type, uint16_t flags) {
  MsgBuilder m(type, flags);
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(a.local.family);
  ifa.ifa_prefixlen = a.prefixLen;
  ifa.ifa_flags = static_cast<uint8_t>(a.flags & 0xff);
  ifa.ifa_scope = a.scope;
  ifa.ifa_index = a.ifindex;
  m.Header(ifa);
  m.Put(IFA_LOCAL, a.local.bytes, a.local.Len());
  const Addr& remote = a.peer.family ? a.peer : a.local;
  m.Put(IFA_ADDRESS, remote.bytes, remote.Len());
  if (a.broadcast.family) m.Put(IFA_BROADCAST, a.broadcast.bytes, a.broadcast.Len());
  if (!a.label.empty()) m.PutStr(IFA_LABEL, a.label);
  if (a.flags) m.PutU32(IFA_FLAGS, a.flags);
  return m;
}

MsgBuilder EncodeAddrAdd(const AddrC& a) { return EncodeAddr(a, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL); }
MsgBuilder EncodeAddrDelete(const AddrC& a) { return EncodeAddr(a, RTM_DELADDR, 0); }

[[noreturn]] void Malformed(const std::string& what) { throw MalformedReply("addr.parse", what); }

bool ParseAddrMsg(const nlmsghdr* nlh, AddrInfoC* out) {
  ifaddrmsg ifa;
  if (!ReadHeader(nlh, RTM_NEWADDR, &ifa, "addr.parse", "Address message is shorter than struct ifaddrmsg")) return false;
  if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6) return false;
  out->family = ifa.ifa_family;
  out->prefixLen = ifa.ifa_prefixlen;
  out->scope = ifa.ifa_scope;
  out->ifindex = ifa.ifa_index;
  out->flags = ifa.ifa_flags;
  bool attrs_ok = true;
  bool ok = ForEachMsgAttr(nlh, sizeof(ifaddrmsg), [&](const Attr& a) {
    switch (a.type) {
      case IFA_ADDRESS: attrs_ok = AddrAttr(a, out->family, &out->address) && attrs_ok; break;
      case IFA_LOCAL: attrs_ok = AddrAttr(a, out->family, &out->local) && attrs_ok; break;
      case IFA_BROADCAST: attrs_ok = AddrAttr(a, out->family, &out->broadcast) && attrs_ok; break;
      case IFA_LABEL: out->label = a.Str(); break;
      case IFA_FLAGS:
        out->flags = CheckedU32(a, &attrs_ok);
        break;
    }
  });
  if (!ok || !attrs_ok) Malformed("Address message has a truncated or mis-sized attribute");
  if (!out->address.family && !out->local.family) Malformed("Address message carries no address");
  return true;
}

Napi::Object AddrToJs(Napi::Env env, const AddrInfoC& a, const std::map<uint32_t, std::string>* names) {
  Napi::Object o = Napi::Object::New(env);
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
  const Addr& own = a.local.family ? a.local : a.address;
  Napi::Value dev = env.Null();
  if (names) {
    auto it = names->find(a.ifindex);
    if (it != names->end()) dev = Napi::String::New(env, it->second);
  }
  o.Set("dev", dev);
  o.Set("ifindex", a.ifindex);
  o.Set("family", a.family == AF_INET6 ? 6 : 4);
  o.Set("address", FormatAddr(own) + "/" + std::to_string(a.prefixLen));
  bool hasPeer = a.local.family && a.address.family &&
                 std::memcmp(a.local.bytes, a.address.bytes, a.local.Len()) != 0;
  o.Set("peer", hasPeer ? Napi::Value(Napi::String::New(env, FormatAddr(a.address))) : env.Null());
  o.Set("broadcast", a.broadcast.family ? Napi::Value(Napi::String::New(env, FormatAddr(a.broadcast))) : env.Null());
  o.Set("label", a.label.empty() ? env.Null() : Napi::Value(Napi::String::New(env, a.label)));
  o.Set("scope", a.scope);
  o.Set("flags", a.flags);
  return o;
}

AddrC AddrFromJs(const Napi::Value& v, const std::string& op) {
  if (!v.IsObject()) throw InvalidArg(op, "Each address must be an object");
  Napi::Object o = v.As<Napi::Object>();
  AddrC a;
  a.dev = GetString(o, "dev", op, false);
  a.ifindex = GetU32(o, "ifindex", op);
  if (a.dev.empty() && !a.ifindex) throw InvalidArg(op, "Missing required field \"dev\"");
  a.local = GetAddr(o, "local", op);
  uint32_t plen = GetU32(o, "prefixLen", op, true);
  if (plen > (a.local.family == AF_INET6 ? 128u : 32u)) throw InvalidArg(op, "Field \"prefixLen\" is out of range");
  a.prefixLen = static_cast<uint8_t>(plen);
  a.peer = GetAddr(o, "peer", op, false);
  a.broadcast = GetAddr(o, "broadcast", op, false);
  if ((a.peer.family && a.peer.family != a.local.family) ||
      (a.broadcast.family && a.broadcast.family != a.local.family)) {
    throw InvalidArg(op, "Fields \"peer\" and \"broadcast\" must be of the address's family");
  }
  a.label = GetString(o, "label", op, false);
  uint32_t scope = GetU32(o, "scope", op, false, RT_SCOPE_UNIVERSE);
  if (scope > 255) throw InvalidArg(op, "Field \"scope\" must be between 0 and 255");
  a.scope = static_cast<uint8_t>(scope);
  a.flags = GetU32(o, "flags", op);
  return a;
}

std::vector<AddrC> AddrsFromJs(const Napi::CallbackInfo& info, const std::string& op) {
  return ArrayFromJs<AddrC>(info.Length() ? info[0] : info.Env().Undefined(), op, "Expected an array of addresses",
                            AddrFromJs);
}

// Sets the ifindex of every address named by device (each device resolved once).
void Resolve(Socket& sock, std::vector<AddrC>& addrs, const std::string& op) {
  std::vector<std::string> devs;
  std::vector<int> indexes;
  for (size_t i = 0; i < addrs.size(); i++) {
    devs.push_back(addrs[i].ifindex ? std::string() : addrs[i].dev);
    indexes.push_back(static_cast<int>(i));
  }
  std::map<std::string, uint32_t> ifindexes = ResolveIfindexes(sock, devs, indexes, op);
  for (size_t i = 0; i < addrs.size(); i++) {
    if (!devs[i].empty()) addrs[i].ifindex = ifindexes[devs[i]];
  }
}

Napi::Value AddrModify(const Napi::CallbackInfo& info, bool add) {
  return RejectOnError(info, [add](const Napi::CallbackInfo& info) {
    const std::string op = add ? "addr.add" : "addr.delete";
    auto addrs = std::make_shared<std::vector<AddrC>>(AddrsFromJs(info, op));
    std::string netns = GetNetns(info, 1, op);
    return RunAsync(info.Env(), [addrs, netns, op, add]() {
      Socket sock(NETLINK_ROUTE, netns);
      // Every device is resolved before anything changes: a missing one fails the batch clean.
      Resolve(sock, *addrs, op);
      std::vector<MsgBuilder> msgs = EncodeEach(*addrs, add ? EncodeAddrAdd : EncodeAddrDelete);
      ApplyBatch(sock, msgs, op, add ? UndoBy(*addrs, EncodeAddrDelete) : nullptr);
    });
  });
}

Napi::Value AddrAdd(const Napi::CallbackInfo& info) { return AddrModify(info, true); }
Napi::Value AddrDelete(const Napi::CallbackInfo& info) { return AddrModify(info, false); }

Napi::Value AddrList(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "addr.list";
    std::string dev;
    uint8_t family = AF_UNSPEC;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object f = info[0].As<Napi::Object>();
      dev = GetString(f, "dev", op, false);
      family = GetFamilyFilter(f, op);
    }
    std::string netns = GetNetns(info, 1, op);
    auto names = std::make_shared<std::map<uint32_t, std::string>>();
    return ListAsync<AddrInfoC>(
        info.Env(),
        [names, dev, family, netns, op](std::vector<AddrInfoC>& addrs) {
          Socket sock(NETLINK_ROUTE, netns);
          uint32_t ifindex = dev.empty() ? 0 : ResolveIfindex(sock, dev, op);
          *names = LinkNames(sock);
          MsgBuilder m(RTM_GETADDR, 0);
          ifaddrmsg ifa{};
          ifa.ifa_family = family;
          m.Header(ifa);
          DumpParsed(sock, m, op, ParseAddrMsg, [&](const AddrInfoC& a) {
            return (family == AF_UNSPEC || a.family == family) && (!ifindex || a.ifindex == ifindex);
          }, &addrs);
        },
        [names](Napi::Env env, const AddrInfoC& a) { return AddrToJs(env, a, names.get()); });
  });
}

Napi::Value EncodeAddrJs(const Napi::CallbackInfo& info, bool add) {
  return ThrowOnError(info, [add](const Napi::CallbackInfo& info) {
    std::vector<MsgBuilder> msgs = EncodeEach(AddrsFromJs(info, "addr.encode"), add ? EncodeAddrAdd : EncodeAddrDelete);
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value EncodeAddrAddJs(const Napi::CallbackInfo& info) { return EncodeAddrJs(info, true); }
Napi::Value EncodeAddrDeleteJs(const Napi::CallbackInfo& info) { return EncodeAddrJs(info, false); }

Napi::Value ParseAddrsJs(const Napi::CallbackInfo& info) {
  return ParseExport<AddrInfoC>(info, "addr.parse", ParseAddrMsg,
                                [](Napi::Env env, const AddrInfoC& a) { return AddrToJs(env, a, nullptr); });
}

}  // namespace

void RegisterAddrs(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"addrAdd", AddrAdd},
             {"addrDelete", AddrDelete},
             {"addrList", AddrList},
             {"encodeAddrAdd", EncodeAddrAddJs},
             {"encodeAddrDelete", EncodeAddrDeleteJs},
             {"parseAddrs", ParseAddrsJs}});
}

}  // namespace veil
