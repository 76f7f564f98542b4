#include "route.h"

#include <linux/rtnetlink.h>
#include <net/if.h>

#include <map>
#include <memory>

#include "family.h"
#include "js.h"
#include "link.h"
#include "pack.h"

namespace veil {

namespace {

enum class RouteCmd { kAdd, kReplace, kDelete };

// A route to add, replace or delete, decoded from a packed batch on the main thread. Optional
// numeric fields use -1 for "not given" so each verb can apply `ip route`'s defaults.
struct RouteC {
  uint8_t family = AF_INET;
  Addr dst;
  uint8_t dstLen = 0;
  uint32_t table = RT_TABLE_MAIN;
  uint32_t dev = 0;      // 1 + index into the batch's device names; 0 = none
  uint32_t ifindex = 0;  // resolved by the worker from dev (or given to the encode export)
  Addr gateway;
  Addr src;
  bool hasMetric = false;
  uint32_t metric = 0;
  int type = -1;
  int scope = -1;
  int protocol = -1;
  uint32_t mtu = 0;
};

// A route as read from the kernel.
struct RouteInfoC {
  uint8_t family = 0;
  uint8_t dstLen = 0;
  uint8_t type = 0;
  uint8_t scope = 0;
  uint8_t protocol = 0;
  uint32_t flags = 0;
  uint32_t table = 0;
  Addr dst;
  Addr gateway;
  Addr src;
  uint32_t oif = 0;
  bool hasMetric = false;
  uint32_t metric = 0;
  uint32_t mtu = 0;
};

// `ip route add|replace|del [TYPE] DST [table T] [dev D] [via G] [src S] [metric M]
//  [scope S] [proto P] [mtu N]`, with ip's defaults: add/replace use protocol "boot", type
// unicast, scope link for a unicast route without a gateway and global otherwise; delete leaves
// protocol and type unset and uses scope "nowhere", which the kernel treats as wildcards.
MsgBuilder EncodeRoute(const RouteC& r, RouteCmd cmd) {
  uint16_t type = cmd == RouteCmd::kDelete ? RTM_DELROUTE : RTM_NEWROUTE;
  uint16_t flags = cmd == RouteCmd::kAdd       ? NLM_F_CREATE | NLM_F_EXCL
                   : cmd == RouteCmd::kReplace ? NLM_F_CREATE | NLM_F_REPLACE
                                               : 0;
  MsgBuilder m(type, flags);
  rtmsg rt{};
  rt.rtm_family = r.family;
  rt.rtm_dst_len = r.dstLen;
  rt.rtm_table = r.table < 256 ? static_cast<uint8_t>(r.table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  if (cmd == RouteCmd::kDelete) {
    rt.rtm_protocol = r.protocol >= 0 ? static_cast<uint8_t>(r.protocol) : static_cast<uint8_t>(RTPROT_UNSPEC);
    rt.rtm_type = r.type >= 0 ? static_cast<uint8_t>(r.type) : static_cast<uint8_t>(RTN_UNSPEC);
    rt.rtm_scope = r.scope >= 0 ? static_cast<uint8_t>(r.scope) : static_cast<uint8_t>(RT_SCOPE_NOWHERE);
  } else {
    rt.rtm_protocol = r.protocol >= 0 ? static_cast<uint8_t>(r.protocol) : static_cast<uint8_t>(RTPROT_BOOT);
    rt.rtm_type = r.type >= 0 ? static_cast<uint8_t>(r.type) : static_cast<uint8_t>(RTN_UNICAST);
    if (r.scope >= 0) {
      rt.rtm_scope = static_cast<uint8_t>(r.scope);
    } else {
      rt.rtm_scope = rt.rtm_type == RTN_UNICAST && !r.gateway.family ? static_cast<uint8_t>(RT_SCOPE_LINK) : static_cast<uint8_t>(RT_SCOPE_UNIVERSE);
    }
  }
  m.Header(rt);
  if (r.table >= 256) m.PutU32(RTA_TABLE, r.table);
  if (r.dstLen > 0) m.Put(RTA_DST, r.dst.bytes, r.dst.Len());
  if (r.src.family) m.Put(RTA_PREFSRC, r.src.bytes, r.src.Len());
  if (r.gateway.family) m.Put(RTA_GATEWAY, r.gateway.bytes, r.gateway.Len());
  if (r.ifindex) m.PutU32(RTA_OIF, r.ifindex);
  if (r.hasMetric) m.PutU32(RTA_PRIORITY, r.metric);
  if (r.mtu) {
    MsgBuilder::Nest metrics(m, RTA_METRICS);
    m.PutU32(RTAX_MTU, r.mtu);
  }
  return m;
}

// Dump request filtered by the kernel (strict checking): table and output device.
MsgBuilder EncodeRouteDump(uint8_t family, uint32_t table, uint32_t ifindex) {
  MsgBuilder m(RTM_GETROUTE, 0);
  rtmsg rt{};
  rt.rtm_family = family;
  rt.rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  m.Header(rt);
  if (table) m.PutU32(RTA_TABLE, table);
  if (ifindex) m.PutU32(RTA_OIF, ifindex);
  return m;
}

[[noreturn]] void Malformed(const std::string& what) { throw MalformedReply("route.parse", what); }

bool ParseRouteMsg(const nlmsghdr* nlh, RouteInfoC* out) {
  rtmsg rt;
  if (!ReadHeader(nlh, RTM_NEWROUTE, &rt, "route.parse", "Route message is shorter than struct rtmsg")) return false;
  if (rt.rtm_family != AF_INET && rt.rtm_family != AF_INET6) return false;
  out->family = rt.rtm_family;
  out->dstLen = rt.rtm_dst_len;
  out->type = rt.rtm_type;
  out->scope = rt.rtm_scope;
  out->protocol = rt.rtm_protocol;
  out->flags = rt.rtm_flags;
  out->table = rt.rtm_table;
  if (out->dstLen > (out->family == AF_INET6 ? 128 : 32)) Malformed("Route prefix length is out of range");
  bool attrs_ok = true;
  bool ok = ForEachMsgAttr(nlh, sizeof(rtmsg), [&](const Attr& a) {
    switch (a.type) {
      case RTA_TABLE:
        out->table = CheckedU32(a, &attrs_ok);
        break;
      case RTA_DST: attrs_ok = AddrAttr(a, out->family, &out->dst) && attrs_ok; break;
      case RTA_GATEWAY: attrs_ok = AddrAttr(a, out->family, &out->gateway) && attrs_ok; break;
      case RTA_PREFSRC: attrs_ok = AddrAttr(a, out->family, &out->src) && attrs_ok; break;
      case RTA_OIF:
        out->oif = CheckedU32(a, &attrs_ok);
        break;
      case RTA_PRIORITY:
        out->hasMetric = true;
        out->metric = CheckedU32(a, &attrs_ok);
        break;
      case RTA_METRICS:
        attrs_ok = ForEachAttr(a.data, a.len, [&](const Attr& b) {
                     if (b.type == RTAX_MTU) {
                       out->mtu = CheckedU32(b, &attrs_ok);
                     }
                   }) && attrs_ok;
        break;
    }
  });
  if (!ok || !attrs_ok) Malformed("Route message has a truncated or mis-sized attribute");
  if (out->dstLen > 0 && !out->dst.family) Malformed("Route message has a prefix length but no destination");
  return true;
}

const char* RouteTypeName(uint8_t t) {
  static const char* names[] = {"unspec",    "unicast",     "local",    "broadcast", "anycast", "multicast",
                                "blackhole", "unreachable", "prohibit", "throw",     "nat",     "xresolve"};
  return t < 12 ? names[t] : nullptr;
}

Napi::Object RouteToJs(Napi::Env env, const RouteInfoC& r, const std::map<uint32_t, std::string>* names) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", r.family == AF_INET6 ? 6 : 4);
  o.Set("dst", r.dstLen == 0 ? std::string("default") : FormatAddr(r.dst) + "/" + std::to_string(r.dstLen));
  o.Set("table", r.table);
  Napi::Value dev = env.Null();
  if (names && r.oif) {
    auto it = names->find(r.oif);
    if (it != names->end()) dev = Napi::String::New(env, it->second);
  }
  o.Set("dev", dev);
  o.Set("ifindex", r.oif ? Napi::Value(Napi::Number::New(env, r.oif)) : env.Null());
  o.Set("gateway", r.gateway.family ? Napi::Value(Napi::String::New(env, FormatAddr(r.gateway))) : env.Null());
  o.Set("src", r.src.family ? Napi::Value(Napi::String::New(env, FormatAddr(r.src))) : env.Null());
  o.Set("metric", r.hasMetric ? Napi::Value(Napi::Number::New(env, r.metric)) : env.Null());
  const char* tn = RouteTypeName(r.type);
  o.Set("type", tn ? std::string(tn) : std::to_string(r.type));
  o.Set("scope", r.scope);
  o.Set("protocol", r.protocol);
  o.Set("mtu", r.mtu ? Napi::Value(Napi::Number::New(env, r.mtu)) : env.Null());
  o.Set("flags", r.flags);
  return o;
}

// Packed route record (agent/netlink/route.ts, packRoutes): 72 bytes, host byte order.
constexpr size_t kRouteRecord = 72;
constexpr size_t kRecFamily = 0, kRecDstLen = 1, kRecFlags = 2, kRecType = 3, kRecScope = 4, kRecProtocol = 5,
                 kRecPad = 6, kRecTable = 8, kRecDev = 12, kRecMetric = 16, kRecMtu = 20, kRecDst = 24,
                 kRecGateway = 40, kRecSrc = 56;
constexpr uint8_t kHasType = 1, kHasScope = 2, kHasProtocol = 4, kHasMetric = 8, kHasGateway = 16, kHasSrc = 32;

// A packed batch of routes naming `ndevs` devices. Every field is range-checked; `firstUse[k]`
// becomes the index of the first route naming device k (for the error when it does not exist).
std::vector<RouteC> DecodeRoutes(const Napi::Value& v, size_t ndevs, std::vector<int>* firstUse, const std::string& op) {
  RecordReader rec(v, kRouteRecord, op);
  size_t n = rec.Count();
  std::vector<RouteC> out(n);
  firstUse->assign(ndevs, -1);
  for (size_t i = 0; i < n; i++) {
    AtIndex(i, [&] {
      RouteC& r = out[i];
      uint8_t fam = rec.U8(i, kRecFamily);
      if (fam != 4 && fam != 6) throw InvalidArg(op, "Field \"family\" must be 4 or 6");
      r.family = fam == 4 ? AF_INET : AF_INET6;
      size_t alen = fam == 4 ? 4 : 16;
      r.dstLen = rec.U8(i, kRecDstLen);
      if (r.dstLen > alen * 8) throw InvalidArg(op, "Field \"dstLen\" is out of range");
      uint8_t flags = rec.U8(i, kRecFlags);
      if ((flags & ~(kHasType | kHasScope | kHasProtocol | kHasMetric | kHasGateway | kHasSrc)) ||
          rec.U8(i, kRecPad) || rec.U8(i, kRecPad + 1)) {
        throw InvalidArg(op, "Packed route has unknown flags");
      }
      if (flags & kHasType) r.type = rec.U8(i, kRecType);
      if (flags & kHasScope) r.scope = rec.U8(i, kRecScope);
      if (flags & kHasProtocol) r.protocol = rec.U8(i, kRecProtocol);
      r.table = rec.U32(i, kRecTable);
      if (r.table == 0) throw InvalidArg(op, "Field \"table\" must not be 0");
      r.dev = rec.U32(i, kRecDev);
      if (r.dev > ndevs) throw InvalidArg(op, "Field \"dev\" refers to no device name");
      if (r.dev && (*firstUse)[r.dev - 1] < 0) (*firstUse)[r.dev - 1] = static_cast<int>(i);
      if (flags & kHasMetric) {
        r.hasMetric = true;
        r.metric = rec.U32(i, kRecMetric);
      }
      r.mtu = rec.U32(i, kRecMtu);
      if (r.mtu > 0xffff) throw InvalidArg(op, "Field \"mtu\" is out of range");
      if (r.dstLen > 0) {
        r.dst.family = r.family;
        std::memcpy(r.dst.bytes, rec.Field(i, kRecDst, alen), alen);
      }
      if (flags & kHasGateway) {
        r.gateway.family = r.family;
        std::memcpy(r.gateway.bytes, rec.Field(i, kRecGateway, alen), alen);
      }
      if (flags & kHasSrc) {
        r.src.family = r.family;
        std::memcpy(r.src.bytes, rec.Field(i, kRecSrc, alen), alen);
      }
    });
  }
  return out;
}

// Sets each route's ifindex from its device's (ifindexes[k] for device k).
void ApplyIfindexes(std::vector<RouteC>& routes, const std::vector<uint32_t>& ifindexes) {
  for (auto& r : routes) {
    if (r.dev) r.ifindex = ifindexes[r.dev - 1];
  }
}

// Encodes `routes` for `cmd`.
std::vector<MsgBuilder> EncodeRoutes(const std::vector<RouteC>& routes, RouteCmd cmd) {
  return EncodeEach(routes, [cmd](const RouteC& r) { return EncodeRoute(r, cmd); });
}

Napi::Value RouteModify(const Napi::CallbackInfo& info, RouteCmd cmd) {
  return RejectOnError(info, [cmd](const Napi::CallbackInfo& info) {
    const std::string op = cmd == RouteCmd::kAdd ? "route.add" : cmd == RouteCmd::kReplace ? "route.replace" : "route.delete";
    // (packed routes, device names, options)
    auto devs = std::make_shared<std::vector<std::string>>(
        GetStringList(info.Length() > 1 ? info[1] : info.Env().Undefined(), op, "device names", IFNAMSIZ - 1));
    auto firstUse = std::make_shared<std::vector<int>>();
    auto routes = std::make_shared<std::vector<RouteC>>(
        DecodeRoutes(info.Length() > 0 ? info[0] : info.Env().Undefined(), devs->size(), firstUse.get(), op));
    std::string netns = GetNetns(info, 2, op);
    bool ignoreMissing = info.Length() > 2 && info[2].IsObject() &&
                         GetBool(info[2].As<Napi::Object>(), "ignoreMissing", op);
    return RunAsync(info.Env(), [routes, devs, firstUse, netns, op, cmd, ignoreMissing]() {
      Socket sock(NETLINK_ROUTE, netns);
      // Every device is resolved (once per name) before anything changes: a missing one
      // fails the batch clean, reported at the first route naming it.
      std::map<std::string, uint32_t> byName = ResolveIfindexes(sock, *devs, *firstUse, op);
      std::vector<uint32_t> ifindexes;
      for (const std::string& d : *devs) ifindexes.push_back(byName[d]);
      ApplyIfindexes(*routes, ifindexes);
      std::vector<MsgBuilder> msgs = EncodeRoutes(*routes, cmd);
      ApplyBatch(sock, msgs, op,
                 cmd == RouteCmd::kAdd
                     ? UndoBy(*routes, [](const RouteC& r) { return EncodeRoute(r, RouteCmd::kDelete); })
                     : nullptr,
                 cmd == RouteCmd::kDelete && ignoreMissing ? ESRCH : 0);
    });
  });
}

Napi::Value RouteAdd(const Napi::CallbackInfo& info) { return RouteModify(info, RouteCmd::kAdd); }
Napi::Value RouteReplace(const Napi::CallbackInfo& info) { return RouteModify(info, RouteCmd::kReplace); }
Napi::Value RouteDelete(const Napi::CallbackInfo& info) { return RouteModify(info, RouteCmd::kDelete); }

Napi::Value RouteList(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "route.list";
    uint8_t family = AF_UNSPEC;
    uint32_t table = RT_TABLE_MAIN;  // 0 = every table
    std::string dev;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object f = info[0].As<Napi::Object>();
      family = GetFamilyFilter(f, op);
      table = GetU32(f, "table", op, false, RT_TABLE_MAIN);
      dev = GetString(f, "dev", op, false);
    }
    std::string netns = GetNetns(info, 1, op);
    auto names = std::make_shared<std::map<uint32_t, std::string>>();
    return ListAsync<RouteInfoC>(
        info.Env(),
        [names, family, table, dev, netns, op](std::vector<RouteInfoC>& routes) {
          Socket sock(NETLINK_ROUTE, netns);
          uint32_t ifindex = dev.empty() ? 0 : ResolveIfindex(sock, dev, op);
          *names = LinkNames(sock);
          // Strict checking lets the kernel filter by table and device; the same filter is
          // applied below for kernels that ignore it.
          int one = 1;
          setsockopt(sock.fd(), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
          MsgBuilder m = EncodeRouteDump(family, table, ifindex);
          try {
            DumpParsed(sock, m, op, ParseRouteMsg, [&](const RouteInfoC& r) {
              return (family == AF_UNSPEC || r.family == family) && (!table || r.table == table) &&
                     (!ifindex || r.oif == ifindex) && !(r.flags & RTM_F_CLONED);
            }, &routes);
          } catch (NlError& e) {
            // A table that holds no route does not exist yet: an empty list, not an error.
            if (e.err == ENOENT && table) return;
            throw;
          }
        },
        [names](Napi::Env env, const RouteInfoC& r) { return RouteToJs(env, r, names.get()); });
  });
}

Napi::Value EncodeRouteJs(const Napi::CallbackInfo& info, RouteCmd cmd) {
  return ThrowOnError(info, [cmd](const Napi::CallbackInfo& info) {
    const std::string op = "route.encode";
    // (packed routes, ifindex of each device name): the same decoding as the real operation.
    std::vector<uint32_t> ifindexes = GetU32List(info.Length() > 1 ? info[1] : info.Env().Undefined(), op, "ifindexes");
    std::vector<int> firstUse;
    std::vector<RouteC> routes = DecodeRoutes(info.Length() > 0 ? info[0] : info.Env().Undefined(), ifindexes.size(), &firstUse, op);
    ApplyIfindexes(routes, ifindexes);
    std::vector<MsgBuilder> msgs = EncodeRoutes(routes, cmd);
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value EncodeRouteAddJs(const Napi::CallbackInfo& info) { return EncodeRouteJs(info, RouteCmd::kAdd); }
Napi::Value EncodeRouteReplaceJs(const Napi::CallbackInfo& info) { return EncodeRouteJs(info, RouteCmd::kReplace); }
Napi::Value EncodeRouteDeleteJs(const Napi::CallbackInfo& info) { return EncodeRouteJs(info, RouteCmd::kDelete); }

Napi::Value EncodeRouteDumpJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "route.encode";
    if (info.Length() < 1 || !info[0].IsObject()) throw InvalidArg(op, "Expected a filter object");
    Napi::Object f = info[0].As<Napi::Object>();
    uint32_t fam = GetU32(f, "family", op);
    std::vector<MsgBuilder> msgs;
    msgs.push_back(EncodeRouteDump(fam == 4 ? AF_INET : fam == 6 ? AF_INET6 : AF_UNSPEC,
                                   GetU32(f, "table", op, false, RT_TABLE_MAIN), GetU32(f, "ifindex", op)));
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value ParseRoutesJs(const Napi::CallbackInfo& info) {
  return ParseExport<RouteInfoC>(info, "route.parse", ParseRouteMsg,
                                 [](Napi::Env env, const RouteInfoC& r) { return RouteToJs(env, r, nullptr); });
}

}  // namespace

void RegisterRoutes(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"routeAdd", RouteAdd},
             {"routeReplace", RouteReplace},
             {"routeDelete", RouteDelete},
             {"routeList", RouteList},
             {"encodeRouteAdd", EncodeRouteAddJs},
             {"encodeRouteReplace", EncodeRouteReplaceJs},
             {"encodeRouteDelete", EncodeRouteDeleteJs},
             {"encodeRouteDump", EncodeRouteDumpJs},
             {"parseRoutes", ParseRoutesJs}});
}

}  // namespace veil
