#include "link.h"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <optional>

#include "family.h"
#include "js.h"

namespace veil {

namespace {

// Closes a namespace file descriptor opened for IFLA_NET_NS_FD once the request is sent.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Opens the namespace named by the caller for IFLA_NET_NS_FD; NlError(ENOENT...) naming it.
int OpenNetnsFd(const std::string& netns, const std::string& op, int index) {
  int fd = OpenNetns(netns);
  if (fd < 0) {
    int e = errno;
    throw NlError(e, op, "Cannot open network namespace \"" + netns + "\": " + strerror(e), "", index);
  }
  return fd;
}

// A link to create, converted from JS on the main thread. masterIndex and peerNetnsFd are
// resolved by the worker (or given directly to the encode export).
struct LinkSpecC {
  std::string name;
  std::string kind;
  uint32_t mtu = 0;
  bool up = false;
  std::string master;
  uint32_t masterIndex = 0;
  bool hasPeer = false;
  std::string peerName;
  std::string peerNetns;
  int32_t peerNetnsFd = -1;
};

struct LinkChangeC {
  uint32_t ifindex = 0;
  bool hasUp = false;
  bool up = false;
  uint32_t mtu = 0;
  std::string name;
  bool hasMaster = false;
  std::string master;  // "" = detach
  uint32_t masterIndex = 0;
  std::string netns;
  int32_t netnsFd = -1;
};

// A link as read from the kernel.
struct LinkC {
  std::string name;
  uint32_t ifindex = 0;
  bool hasKind = false;
  std::string kind;
  uint32_t mtu = 0;
  uint32_t flags = 0;
  uint8_t operstate = 0;
  std::vector<uint8_t> mac;
  bool hasMaster = false;
  uint32_t master = 0;
};

// A link request with its ifinfomsg (family AF_UNSPEC): the link `ifindex` (0 = named by
// IFLA_IFNAME), set up or down when `up` is given.
MsgBuilder LinkMsg(uint16_t type, uint16_t flags, uint32_t ifindex = 0, std::optional<bool> up = std::nullopt) {
  MsgBuilder m(type, flags);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  if (up) {
    ifi.ifi_flags = *up ? IFF_UP : 0;
    ifi.ifi_change = IFF_UP;
  }
  m.Header(ifi);
  return m;
}

// `ip link add NAME [mtu M] [master B] [up] type KIND [peer name P [netns NS]]`
MsgBuilder EncodeLinkAdd(const LinkSpecC& s) {
  MsgBuilder m = LinkMsg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, s.up ? std::optional<bool>(true) : std::nullopt);
  m.PutStr(IFLA_IFNAME, s.name);
  if (s.mtu) m.PutU32(IFLA_MTU, s.mtu);
  if (s.masterIndex) m.PutU32(IFLA_MASTER, s.masterIndex);
  {
    MsgBuilder::Nest info(m, IFLA_LINKINFO);
    m.PutStr(IFLA_INFO_KIND, s.kind);
    if (s.hasPeer) {
      MsgBuilder::Nest data(m, IFLA_INFO_DATA);
      MsgBuilder::Nest peer(m, VETH_INFO_PEER);
      ifinfomsg p{};
      p.ifi_family = AF_UNSPEC;
      m.Header(p);
      m.PutStr(IFLA_IFNAME, s.peerName);
      // Both ends of a veth pair get the same MTU: a mismatch silently drops large packets.
      if (s.mtu) m.PutU32(IFLA_MTU, s.mtu);
      if (s.peerNetnsFd >= 0) m.PutU32(IFLA_NET_NS_FD, static_cast<uint32_t>(s.peerNetnsFd));
    }
  }
  return m;
}

// `ip link set dev NAME [up|down] [mtu M] [name N] [master B | nomaster] [netns NS]`
MsgBuilder EncodeLinkSet(const LinkChangeC& c) {
  MsgBuilder m = LinkMsg(RTM_NEWLINK, 0, c.ifindex, c.hasUp ? std::optional<bool>(c.up) : std::nullopt);
  if (!c.name.empty()) m.PutStr(IFLA_IFNAME, c.name);
  if (c.mtu) m.PutU32(IFLA_MTU, c.mtu);
  if (c.hasMaster) m.PutU32(IFLA_MASTER, c.masterIndex);
  if (c.netnsFd >= 0) m.PutU32(IFLA_NET_NS_FD, static_cast<uint32_t>(c.netnsFd));
  return m;
}

// `ip link del NAME`
MsgBuilder EncodeLinkDelete(const std::string& name) {
  MsgBuilder m = LinkMsg(RTM_DELLINK, 0);
  m.PutStr(IFLA_IFNAME, name);
  return m;
}

MsgBuilder EncodeLinkGet(const std::string& name) {
  MsgBuilder m = LinkMsg(RTM_GETLINK, 0);
  m.PutStr(IFLA_IFNAME, name);
  m.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return m;
}

MsgBuilder EncodeLinkDump() {
  MsgBuilder m = LinkMsg(RTM_GETLINK, 0);
  m.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return m;
}

[[noreturn]] void Malformed(const std::string& what) { throw MalformedReply("link.parse", what); }

// Parses one RTM_NEWLINK message. Returns false for other message types; throws
// NlError(EMALFORMED) on a truncated header or attribute.
bool ParseLink(const nlmsghdr* nlh, LinkC* out) {
  ifinfomsg ifi;
  if (!ReadHeader(nlh, RTM_NEWLINK, &ifi, "link.parse", "Link message is shorter than struct ifinfomsg")) return false;
  out->ifindex = static_cast<uint32_t>(ifi.ifi_index);
  out->flags = ifi.ifi_flags;
  bool nested_ok = true;
  bool ok = ForEachMsgAttr(nlh, sizeof(ifinfomsg), [&](const Attr& a) {
    switch (a.type) {
      case IFLA_IFNAME: out->name = a.Str(); break;
      case IFLA_MTU:
        out->mtu = CheckedU32(a, &nested_ok);
        break;
      case IFLA_OPERSTATE: out->operstate = a.U8(); break;
      case IFLA_ADDRESS: out->mac.assign(a.data, a.data + a.len); break;
      case IFLA_MASTER:
        out->hasMaster = true;
        out->master = CheckedU32(a, &nested_ok);
        break;
      case IFLA_LINKINFO:
        nested_ok = ForEachAttr(a.data, a.len, [&](const Attr& b) {
                      if (b.type == IFLA_INFO_KIND) {
                        out->hasKind = true;
                        out->kind = b.Str();
                      }
                    }) && nested_ok;
        break;
    }
  });
  if (!ok || !nested_ok) Malformed("Link message has a truncated attribute");
  return true;
}

const char* OperStateName(uint8_t s) {
  static const char* names[] = {"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"};
  return s < 7 ? names[s] : "UNKNOWN";
}

Napi::Object LinkToJs(Napi::Env env, const LinkC& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", l.name);
  o.Set("ifindex", l.ifindex);
  o.Set("kind", l.hasKind ? Napi::Value(Napi::String::New(env, l.kind)) : env.Null());
  o.Set("mtu", l.mtu);
  o.Set("up", Napi::Boolean::New(env, (l.flags & IFF_UP) != 0));
  o.Set("operState", OperStateName(l.operstate));
  if (l.mac.empty()) {
    o.Set("mac", env.Null());
  } else {
    std::string s;
    char b[4];
    for (size_t i = 0; i < l.mac.size(); i++) {
      std::snprintf(b, sizeof(b), i ? ":%02x" : "%02x", l.mac[i]);
      s += b;
    }
    o.Set("mac", s);
  }
  o.Set("masterIndex", l.hasMaster && l.master ? Napi::Value(Napi::Number::New(env, l.master)) : env.Null());
  o.Set("flags", l.flags);
  return o;
}

LinkSpecC LinkSpecFromJs(const Napi::Value& v, const std::string& op) {
  if (!v.IsObject()) throw InvalidArg(op, "Each link must be an object");
  Napi::Object o = v.As<Napi::Object>();
  LinkSpecC s;
  s.name = GetString(o, "name", op);
  s.kind = GetString(o, "kind", op);
  s.mtu = GetU32(o, "mtu", op);
  s.up = GetBool(o, "up", op);
  s.master = GetString(o, "master", op, false);
  s.masterIndex = GetU32(o, "masterIndex", op);
  if (Has(o, "peer")) {
    Napi::Object p = GetObject(o, "peer", op);
    s.hasPeer = true;
    s.peerName = GetString(p, "name", op);
    s.peerNetns = GetString(p, "netns", op, false);
    if (Has(p, "netnsFd")) s.peerNetnsFd = static_cast<int32_t>(GetU32(p, "netnsFd", op));
  }
  return s;
}

LinkChangeC LinkChangeFromJs(const Napi::Value& v, const std::string& op) {
  if (!v.IsObject()) throw InvalidArg(op, "The link change must be an object");
  Napi::Object o = v.As<Napi::Object>();
  LinkChangeC c;
  c.ifindex = GetU32(o, "ifindex", op);
  if (Has(o, "up")) {
    c.hasUp = true;
    c.up = GetBool(o, "up", op);
  }
  c.mtu = GetU32(o, "mtu", op);
  c.name = GetString(o, "name", op, false);
  if (o.Has("master") && !o.Get("master").IsUndefined()) {
    c.hasMaster = true;
    c.master = o.Get("master").IsNull() ? "" : GetString(o, "master", op);
  }
  if (Has(o, "masterIndex")) {
    c.hasMaster = true;
    c.masterIndex = GetU32(o, "masterIndex", op);
  }
  c.netns = GetString(o, "netns", op, false);
  if (Has(o, "netnsFd")) c.netnsFd = static_cast<int32_t>(GetU32(o, "netnsFd", op));
  return c;
}

std::vector<LinkSpecC> LinkSpecsFromJs(const Napi::CallbackInfo& info, const std::string& op) {
  return ArrayFromJs<LinkSpecC>(info.Length() ? info[0] : info.Env().Undefined(), op, "Expected an array of links",
                                LinkSpecFromJs);
}

std::vector<std::string> NamesFromJs(const Napi::Value& v, const std::string& op) {
  if (!v.IsArray()) throw InvalidArg(op, "Expected an array of link names");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw InvalidArg(op, "Link names must be strings");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Value LinkAdd(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.add";
    auto specs = std::make_shared<std::vector<LinkSpecC>>(LinkSpecsFromJs(info, op));
    std::string netns = GetNetns(info, 1, op);
    return RunAsync(
        info.Env(),
        [specs, netns, op]() {
          Socket sock(NETLINK_ROUTE, netns);
          std::vector<std::string> created;
          for (size_t i = 0; i < specs->size(); i++) {
            LinkSpecC& s = (*specs)[i];
            try {
              // Links are created one by one: a later link may name an earlier one as master.
              if (!s.master.empty()) s.masterIndex = ResolveIfindex(sock, s.master, op, static_cast<int>(i));
              std::optional<Fd> peerNs;
              if (s.hasPeer && !s.peerNetns.empty()) {
                peerNs.emplace(OpenNetnsFd(s.peerNetns, op, static_cast<int>(i)));
                s.peerNetnsFd = peerNs->get();
              }
              MsgBuilder m = EncodeLinkAdd(s);
              sock.Request(m, op);
              created.push_back(s.name);
            } catch (NlError& e) {
              e.index = static_cast<int>(i);
              for (auto it = created.rbegin(); it != created.rend(); ++it) {
                MsgBuilder d = EncodeLinkDelete(*it);
                try {
                  sock.Request(d, "link.add.rollback");
                } catch (const NlError&) {
                  // Best effort: the original failure is what the caller needs to see.
                }
              }
              throw;
            }
          }
        });
  });
}

Napi::Value LinkDelete(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.delete";
    auto names = std::make_shared<std::vector<std::string>>(NamesFromJs(info.Length() ? info[0] : info.Env().Undefined(), op));
    std::string netns = GetNetns(info, 1, op);
    return RunAsync(info.Env(), [names, netns, op]() {
      Socket sock(NETLINK_ROUTE, netns);
      std::vector<MsgBuilder> msgs = EncodeEach(*names, EncodeLinkDelete);
      ApplyBatch(sock, msgs, op, nullptr);
    });
  });
}

Napi::Value LinkGet(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.get";
    if (info.Length() < 1 || !info[0].IsString()) throw InvalidArg(op, "Expected a link name");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    std::string netns = GetNetns(info, 1, op);
    auto link = std::make_shared<LinkC>();
    return RunAsync(
        info.Env(),
        [link, name, netns, op]() {
          Socket sock(NETLINK_ROUTE, netns);
          MsgBuilder m = EncodeLinkGet(name);
          bool found = false;
          try {
            sock.RequestReplies(m, op, [&](const nlmsghdr* r) {
              if (ParseLink(r, link.get())) found = true;
            });
          } catch (NlError& e) {
            if (e.err == ENODEV) e.detail = "Link \"" + name + "\" does not exist";
            throw;
          }
          if (!found) throw NlError(ENODEV, op, "Link \"" + name + "\" does not exist");
        },
        [link](Napi::Env env) -> Napi::Value { return LinkToJs(env, *link); });
  });
}

Napi::Value LinkList(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.list";
    std::string netns = GetNetns(info, 0, op);
    return ListAsync<LinkC>(
        info.Env(),
        [netns, op](std::vector<LinkC>& links) {
          Socket sock(NETLINK_ROUTE, netns);
          MsgBuilder m = EncodeLinkDump();
          DumpParsed(sock, m, op, ParseLink, [](const LinkC&) { return true; }, &links);
        },
        LinkToJs);
  });
}

Napi::Value LinkSet(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.set";
    if (info.Length() < 2 || !info[0].IsString()) throw InvalidArg(op, "Expected a link name and a change");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    auto change = std::make_shared<LinkChangeC>(LinkChangeFromJs(info[1], op));
    std::string netns = GetNetns(info, 2, op);
    return RunAsync(
        info.Env(),
        [change, name, netns, op]() {
          Socket sock(NETLINK_ROUTE, netns);
          change->ifindex = ResolveIfindex(sock, name, op);
          if (change->hasMaster && !change->master.empty()) {
            change->masterIndex = ResolveIfindex(sock, change->master, op);
          }
          Fd ns(change->netns.empty() ? -1 : OpenNetnsFd(change->netns, op, -1));
          change->netnsFd = ns.get();
          MsgBuilder m = EncodeLinkSet(*change);
          sock.Request(m, op);
        });
  });
}

Napi::Value EncodeLinkAddJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    std::vector<MsgBuilder> msgs = EncodeEach(LinkSpecsFromJs(info, "link.encode"), EncodeLinkAdd);
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value EncodeLinkSetJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "link.encode";
    if (info.Length() < 1) throw InvalidArg(op, "Expected a link change");
    std::vector<MsgBuilder> msgs;
    msgs.push_back(EncodeLinkSet(LinkChangeFromJs(info[0], op)));
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value EncodeLinkDeleteJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) {
    std::vector<MsgBuilder> msgs =
        EncodeEach(NamesFromJs(info.Length() ? info[0] : info.Env().Undefined(), "link.encode"), EncodeLinkDelete);
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value ParseLinksJs(const Napi::CallbackInfo& info) { return ParseExport<LinkC>(info, "link.parse", ParseLink, LinkToJs); }

}  // namespace

uint32_t ResolveIfindex(Socket& sock, const std::string& name, const std::string& op, int index) {
  MsgBuilder m = EncodeLinkGet(name);
  uint32_t ifindex = 0;
  try {
    sock.RequestReplies(m, op, [&](const nlmsghdr* r) {
      LinkC l;
      if (ParseLink(r, &l)) ifindex = l.ifindex;
    });
  } catch (NlError& e) {
    if (e.err == ENODEV) {
      throw NlError(ENODEV, op, "Device \"" + name + "\" does not exist", e.extack, index);
    }
    e.index = index;
    throw;
  }
  if (!ifindex) throw NlError(ENODEV, op, "Device \"" + name + "\" does not exist", "", index);
  return ifindex;
}

std::map<std::string, uint32_t> ResolveIfindexes(Socket& sock, const std::vector<std::string>& names,
                                                 const std::vector<int>& indexes, const std::string& op) {
  std::map<std::string, uint32_t> out;
  for (size_t i = 0; i < names.size(); i++) {
    if (names[i].empty() || out.count(names[i])) continue;
    out[names[i]] = ResolveIfindex(sock, names[i], op, i < indexes.size() ? indexes[i] : -1);
  }
  return out;
}

std::map<uint32_t, std::string> LinkNames(Socket& sock) {
  std::map<uint32_t, std::string> out;
  MsgBuilder m = EncodeLinkDump();
  sock.Dump(m, "link.list", [&](const nlmsghdr* r) {
    LinkC l;
    if (ParseLink(r, &l)) out[l.ifindex] = l.name;
  });
  return out;
}

void ApplyBatch(Socket& sock, std::vector<MsgBuilder>& msgs, const std::string& op,
                const std::function<MsgBuilder(size_t)>& undo, int ignore_errno) {
  std::vector<bool> done(msgs.size(), false);
  std::vector<size_t> order(msgs.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<MsgBuilder> retry;
  std::vector<MsgBuilder>* cur = &msgs;
  for (;;) {
    std::vector<bool> applied;
    NlError err(0, op, "");
    int f = sock.Batch(*cur, op, true, &applied, &err);
    for (size_t i = 0; i < applied.size(); i++) {
      if (applied[i]) done[order[i]] = true;
    }
    if (f < 0) return;
    size_t failed = order[static_cast<size_t>(f)];
    if (ignore_errno != 0 && err.err == ignore_errno) {
      // Treat as done and resubmit every later request the kernel did not apply.
      std::vector<MsgBuilder> next;
      std::vector<size_t> next_order;
      for (size_t i = static_cast<size_t>(f) + 1; i < cur->size(); i++) {
        if (!applied[i]) {
          next.push_back((*cur)[i]);
          next_order.push_back(order[i]);
        }
      }
      if (next.empty()) return;
      retry = std::move(next);
      order = std::move(next_order);
      cur = &retry;
      continue;
    }
    err.index = static_cast<int>(failed);
    if (undo) {
      std::vector<MsgBuilder> back;
      for (size_t i = done.size(); i-- > 0;) {
        if (done[i]) back.push_back(undo(i));
      }
      std::vector<bool> ignored;
      NlError undo_err(0, op, "");
      try {
        sock.Batch(back, op + ".rollback", false, &ignored, &undo_err);
      } catch (const NlError&) {
        // Best effort: report the original failure.
      }
    }
    throw err;
  }
}

void RegisterLinks(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"linkAdd", LinkAdd},
             {"linkDelete", LinkDelete},
             {"linkGet", LinkGet},
             {"linkList", LinkList},
             {"linkSet", LinkSet},
             {"encodeLinkAdd", EncodeLinkAddJs},
             {"encodeLinkSet", EncodeLinkSetJs},
             {"encodeLinkDelete", EncodeLinkDeleteJs},
             {"parseLinks", ParseLinksJs}});
}

}  // namespace veil
