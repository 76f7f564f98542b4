// Attaching tc programs to an interface (host side of a pod's veth, the uplink), in any network
// namespace: tcx links where the kernel has them (6.6+), pinned under <pinDir>/links/ so they
// outlive the agent; else a clsact qdisc with a cls_bpf direct-action filter, through our own
// rtnetlink (the equivalent of `tc qdisc add dev D clsact` + `tc filter replace dev D ingress
// prio 1 handle 1 bpf da fd F`). Attaching is idempotent; a different program replaces the
// attached one atomically (tcx: BPF_LINK_UPDATE; clsact: NLM_F_REPLACE of the same prio/handle).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>

#include "bpf.h"
#include "family.h"
#include "js.h"
#include "link.h"

namespace veil {

namespace {

// Attach types and link type of tcx (kernel 6.6, include/uapi/linux/bpf.h: enum bpf_attach_type
// BPF_TCX_INGRESS = 46, BPF_TCX_EGRESS = 47; enum bpf_link_type BPF_LINK_TYPE_TCX = 11). Debian's
// uapi header and libbpf 1.1 predate tcx, so they are spelled out here with the kernel's values.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;
constexpr uint32_t kBpfLinkTypeTcx = 11;

// The cls_bpf filter Veil owns on a clsact hook: one priority and handle, so replace finds it and
// other tools' filters are left alone.
constexpr uint32_t kClsPrio = 1;
constexpr uint32_t kClsHandle = 1;
constexpr const char* kClsName = "veil";

struct AttachC {
  int progFd = -1;
  std::string ifname;
  uint32_t ifindex = 0;
  bool ingress = true;
  std::string netns;
  std::string mode = "auto";  // auto | tcx | clsact
  std::string pinDir;
  // out
  std::string usedMode, action;
  uint32_t progId = 0;
  std::vector<std::string> removed;
  // query
  uint32_t tcxProgId = 0, tcxLinkId = 0, clsProgId = 0;
  bool hasTcx = false, hasCls = false;
};

uint32_t ProgId(int fd, const std::string& op) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (ret < 0) throw BpfError(ret, op, "Descriptor " + std::to_string(fd) + " is not a loaded BPF program");
  if (info.type != BPF_PROG_TYPE_SCHED_CLS) {
    throw NlError(EINVAL, op, "Program \"" + std::string(info.name) + "\" is not a tc program (type " +
                                  std::to_string(info.type) + "); declare it with SEC(\"tc\")");
  }
  return info.id;
}

// The network namespace's inode: names the namespace in link pin paths, so equal ifindexes in
// different namespaces never share a pin.
uint64_t NetnsInode(const std::string& netns, const std::string& op) {
  std::string path = "/proc/self/ns/net";
  if (!netns.empty()) path = netns[0] == '/' ? netns : "/run/netns/" + netns;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    int e = errno;
    throw NlError(e, op, "Cannot open network namespace \"" + netns + "\": " + strerror(e));
  }
  return st.st_ino;
}

std::string LinkPinPath(const AttachC& a, uint64_t ino) {
  return a.pinDir + "/links/" + std::to_string(ino) + "-" + std::to_string(a.ifindex) + "-" +
         (a.ingress ? "ingress" : "egress");
}

// The part of struct bpf_link_info Veil reads; the tcx member of its union (ifindex, attach_type)
// is newer than Debian's header. The union starts at offset 16 (8-byte aligned after 3 x u32).
struct LinkInfoRaw {
  uint32_t type, id, prog_id, pad;
  uint32_t ifindex, attach_type;
  uint8_t rest[96];
};

struct PinnedLink {
  OwnedFd fd;
  LinkInfoRaw info{};
};

std::optional<PinnedLink> OpenPinnedLink(const std::string& path, const std::string& op) {
  int fd = bpf_obj_get(path.c_str());
  if (fd == -ENOENT) return std::nullopt;
  if (fd < 0) throw BpfError(fd, op, "Cannot open pinned link \"" + path + "\"");
  PinnedLink l;
  l.fd = OwnedFd(fd);
  uint32_t len = sizeof(l.info);
  int ret = bpf_obj_get_info_by_fd(fd, &l.info, &len);
  if (ret < 0) throw BpfError(ret, op, "Cannot read pinned link \"" + path + "\"");
  return l;
}

// ---- clsact through rtnetlink ----

uint32_t ClsParent(bool ingress) {
  return TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
}

MsgBuilder TcMsg(uint16_t type, uint16_t flags, uint32_t ifindex, uint32_t parent, uint32_t handle, uint32_t info) {
  MsgBuilder m(type, flags);
  tcmsg t{};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = static_cast<int>(ifindex);
  t.tcm_parent = parent;
  t.tcm_handle = handle;
  t.tcm_info = info;
  m.Header(t);
  return m;
}

uint32_t ClsInfo() { return TC_H_MAKE(kClsPrio << 16, htons(ETH_P_ALL)); }

// `tc qdisc add dev D clsact`: true when this call created it.
bool EnsureClsact(Socket& sock, uint32_t ifindex, const std::string& op) {
  MsgBuilder m = TcMsg(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex, TC_H_CLSACT, TC_H_MAKE(TC_H_CLSACT, 0), 0);
  m.PutStr(TCA_KIND, "clsact");
  try {
    sock.Request(m, op);
    return true;
  } catch (NlError& e) {
    if (e.err == EEXIST) return false;
    throw;
  }
}

void DeleteClsact(Socket& sock, uint32_t ifindex, const std::string& op) {
  MsgBuilder m = TcMsg(RTM_DELQDISC, 0, ifindex, TC_H_CLSACT, TC_H_MAKE(TC_H_CLSACT, 0), 0);
  m.PutStr(TCA_KIND, "clsact");
  sock.Request(m, op);
}

// The program id of Veil's cls_bpf filter on the hook; 0 when there is none.
uint32_t FindClsFilter(Socket& sock, uint32_t ifindex, bool ingress, const std::string& op) {
  MsgBuilder m = TcMsg(RTM_GETTFILTER, 0, ifindex, ClsParent(ingress), 0, 0);
  uint32_t progId = 0;
  try {
    sock.Dump(m, op, [&](const nlmsghdr* nlh) {
      tcmsg t;
      if (!ReadHeader(nlh, RTM_NEWTFILTER, &t, op, "Filter message is shorter than struct tcmsg")) return;
      if (t.tcm_handle != kClsHandle || TC_H_MAJ(t.tcm_info) != (kClsPrio << 16)) return;
      std::string kind;
      uint32_t id = 0;
      bool ok = ForEachMsgAttr(nlh, sizeof(tcmsg), [&](const Attr& a) {
        if (a.type == TCA_KIND) kind = a.Str();
        if (a.type == TCA_OPTIONS) {
          ForEachAttr(a.data, a.len, [&](const Attr& b) {
            if (b.type == TCA_BPF_ID) id = b.U32();
          });
        }
      });
      if (!ok) throw MalformedReply(op, "Filter message has a truncated attribute");
      if (kind == "bpf") progId = id;
    });
  } catch (NlError& e) {
    // No clsact qdisc on the device: no filter either.
    if (e.err == EINVAL || e.err == ENOENT) return 0;
    throw;
  }
  return progId;
}

// `tc filter replace dev D ingress|egress prio 1 handle 1 bpf da fd F name veil`
void ReplaceClsFilter(Socket& sock, uint32_t ifindex, bool ingress, int progFd, const std::string& op) {
  MsgBuilder m = TcMsg(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, ifindex, ClsParent(ingress), kClsHandle, ClsInfo());
  m.PutStr(TCA_KIND, "bpf");
  {
    MsgBuilder::Nest opts(m, TCA_OPTIONS);
    m.PutU32(TCA_BPF_FD, static_cast<uint32_t>(progFd));
    m.PutStr(TCA_BPF_NAME, kClsName);
    m.PutU32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
  }
  sock.Request(m, op);
}

// `tc filter del dev D ingress|egress prio 1 handle 1 bpf`: true when one was removed.
bool DeleteClsFilter(Socket& sock, uint32_t ifindex, bool ingress, const std::string& op) {
  MsgBuilder m = TcMsg(RTM_DELTFILTER, 0, ifindex, ClsParent(ingress), kClsHandle, ClsInfo());
  m.PutStr(TCA_KIND, "bpf");
  try {
    sock.Request(m, op);
    return true;
  } catch (NlError& e) {
    if (e.err == ENOENT || e.err == EINVAL) return false;  // no filter, or no clsact qdisc
    throw;
  }
}

// Detaches and unpins Veil's tcx link on the hook; true when there was one.
bool RemoveTcx(const std::string& path, const std::string& op) {
  auto l = OpenPinnedLink(path, op);
  if (!l) return false;
  bpf_link_detach(l->fd.get());  // a link already defunct (device gone) has nothing to detach
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    int e = errno;
    throw NlError(e, op, "Cannot unpin link \"" + path + "\": " + strerror(e));
  }
  return true;
}

// Serialises attach, detach and prune on one pin directory, across threads and processes (an
// old and a new agent during an upgrade): the lookup of a hook's pinned link, the link's
// creation or update and its pin must not interleave with another's, or two links end up on one
// hook, or an update races a link that is about to be dropped. flock(2) on the links directory.
class LinksLock {
 public:
  LinksLock(const std::string& dir, const std::string& op) {
    fd_ = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) {
      if (errno == ENOENT) return;  // nothing pinned yet, nothing to protect (detach, list)
      int e = errno;
      throw NlError(e, op, "Cannot open link pin directory \"" + dir + "\": " + strerror(e));
    }
    while (flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd_);
      throw NlError(e, op, "Cannot lock link pin directory \"" + dir + "\": " + strerror(e));
    }
  }
  ~LinksLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  LinksLock(const LinksLock&) = delete;
  LinksLock& operator=(const LinksLock&) = delete;

 private:
  int fd_ = -1;
};

void Resolve(AttachC& a, Socket& sock, const std::string& op) {
  if (a.ifindex == 0) a.ifindex = ResolveIfindex(sock, a.ifname, op);
}

std::unique_ptr<Socket> OpenRtnl(const AttachC& a, const std::string& op) {
  try {
    return std::make_unique<Socket>(NETLINK_ROUTE, a.netns);
  } catch (NlError& e) {
    e.op = op;
    throw;
  }
}

void DoAttach(AttachC& a) {
  const std::string op = "bpf.attach";
  a.progId = ProgId(a.progFd, op);
  auto sock = OpenRtnl(a, op);
  Resolve(a, *sock, op);
  EnsureBpffsDir(a.pinDir + "/links", op);
  LinksLock lock(a.pinDir + "/links", op);
  uint64_t ino = NetnsInode(a.netns, op);
  std::string pin = LinkPinPath(a, ino);

  // Two rounds at most: when another attach pins a link for the same hook between our lookup
  // and our pin (EEXIST), ours is dropped (closing it detaches it) and theirs is updated.
  for (int round = 0; a.mode != "clsact" && round < 2; round++) {
    if (auto l = OpenPinnedLink(pin, op)) {
      bool alive = l->info.type == kBpfLinkTypeTcx && l->info.ifindex == a.ifindex;
      if (alive) {
        a.usedMode = "tcx";
        if (l->info.prog_id == a.progId) {
          a.action = "unchanged";
        } else {
          int ret = bpf_link_update(l->fd.get(), a.progFd, nullptr);
          if (ret < 0) throw BpfError(ret, op, "Cannot replace the program of link \"" + pin + "\"");
          a.action = "replaced";
        }
        return;
      }
      unlink(pin.c_str());  // defunct: its device went away and the ifindex was reused
    }
    int fd = -1;
    WithNetns(a.netns, [&]() { fd = bpf_link_create(a.progFd, static_cast<int>(a.ifindex), static_cast<bpf_attach_type>(a.ingress ? kBpfTcxIngress : kBpfTcxEgress), nullptr); });
    if (fd >= 0) {
      OwnedFd link(fd);
      int ret = bpf_obj_pin(fd, pin.c_str());
      if (ret == -EEXIST && round == 0) continue;
      if (ret < 0) throw BpfError(ret, op, "Cannot pin link at \"" + pin + "\"");  // closing fd detaches it
      a.usedMode = "tcx";
      // Coming from clsact (forced earlier, or an older agent): the filter goes now that the
      // link runs, so the program runs once.
      a.action = DeleteClsFilter(*sock, a.ifindex, a.ingress, op) ? "replaced" : "created";
      return;
    }
    // A kernel without tcx refuses the attach type with EINVAL.
    if (!(fd == -EINVAL && a.mode == "auto")) {
      throw BpfError(fd, op, "Cannot attach a tcx link to interface \"" + a.ifname + "\" (ifindex " + std::to_string(a.ifindex) + ")");
    }
    break;
  }

  a.usedMode = "clsact";
  uint32_t current = FindClsFilter(*sock, a.ifindex, a.ingress, op);
  bool hadTcx = false;
  if (current == a.progId) {
    a.action = "unchanged";
  } else {
    bool created = EnsureClsact(*sock, a.ifindex, op);
    try {
      ReplaceClsFilter(*sock, a.ifindex, a.ingress, a.progFd, op);
    } catch (NlError&) {
      if (created) {
        try {
          DeleteClsact(*sock, a.ifindex, op);
        } catch (const NlError&) {
          // Best effort: the attach failure is what the caller needs to see.
        }
      }
      throw;
    }
    a.action = current ? "replaced" : "created";
  }
  hadTcx = RemoveTcx(pin, op);
  if (hadTcx && a.action == "created") a.action = "replaced";
}

void DoDetach(AttachC& a) {
  const std::string op = "bpf.detach";
  auto sock = OpenRtnl(a, op);
  Resolve(a, *sock, op);
  LinksLock lock(a.pinDir + "/links", op);
  uint64_t ino = NetnsInode(a.netns, op);
  if (RemoveTcx(LinkPinPath(a, ino), op)) a.removed.push_back("tcx");
  if (DeleteClsFilter(*sock, a.ifindex, a.ingress, op)) a.removed.push_back("clsact");
}

void DoQuery(AttachC& a) {
  const std::string op = "bpf.attachment";
  auto sock = OpenRtnl(a, op);
  Resolve(a, *sock, op);
  uint64_t ino = NetnsInode(a.netns, op);
  if (auto l = OpenPinnedLink(LinkPinPath(a, ino), op)) {
    if (l->info.type == kBpfLinkTypeTcx && l->info.ifindex == a.ifindex) {
      a.hasTcx = true;
      a.tcxProgId = l->info.prog_id;
      a.tcxLinkId = l->info.id;
    }
  }
  a.clsProgId = FindClsFilter(*sock, a.ifindex, a.ingress, op);
  a.hasCls = a.clsProgId != 0;
}

// Every link pinned under <pinDir>/links: what it is attached to now (ifindex 0: its device is
// gone and the link no longer runs anything).
struct PinnedLinkC {
  std::string name;
  uint32_t linkId = 0, progId = 0, ifindex = 0, attachType = 0;
};

std::vector<PinnedLinkC> ListLinks(const std::string& pinDir, bool pruneDefunct, const std::string& op) {
  std::vector<PinnedLinkC> out;
  std::string dir = pinDir + "/links";
  LinksLock lock(dir, op);
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    int e = errno;
    throw NlError(e, op, "Cannot read link pins in \"" + dir + "\": " + strerror(e));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
  while (dirent* ent = readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    auto l = OpenPinnedLink(path, op);
    if (!l) continue;  // removed meanwhile
    PinnedLinkC p;
    p.name = name;
    p.linkId = l->info.id;
    p.progId = l->info.prog_id;
    p.ifindex = l->info.type == kBpfLinkTypeTcx ? l->info.ifindex : 0;
    p.attachType = l->info.type == kBpfLinkTypeTcx ? l->info.attach_type : 0;
    if (pruneDefunct && p.ifindex == 0) {
      if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        int e = errno;
        throw NlError(e, op, "Cannot unpin defunct link \"" + path + "\": " + strerror(e));
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

// links({pinDir, prune?}) -> [{name, linkId, progId, ifindex, direction}]: with prune, pins of
// links whose device is gone are removed (they are still listed, with ifindex 0).
Napi::Value LinksJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.links";
    if (info.Length() < 1 || !info[0].IsObject()) throw InvalidArg(op, "Expected an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    std::string pinDir = GetString(o, "pinDir", op);
    bool prune = GetBool(o, "prune", op, false);
    auto out = std::make_shared<std::vector<PinnedLinkC>>();
    return RunAsync(
        info.Env(), [pinDir, prune, out, op]() { *out = ListLinks(pinDir, prune, op); },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array a = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); i++) {
            auto& l = (*out)[i];
            Napi::Object x = Napi::Object::New(env);
            x.Set("name", l.name);
            x.Set("linkId", l.linkId);
            x.Set("progId", l.progId);
            x.Set("ifindex", l.ifindex);
            if (l.attachType == static_cast<uint32_t>(kBpfTcxIngress)) x.Set("direction", "ingress");
            if (l.attachType == static_cast<uint32_t>(kBpfTcxEgress)) x.Set("direction", "egress");
            a.Set(i, x);
          }
          return a;
        });
  });
}

std::shared_ptr<AttachC> GetAttachArgs(const Napi::CallbackInfo& info, const std::string& op, bool needProg) {
  if (info.Length() < 1 || !info[0].IsObject()) throw InvalidArg(op, "Expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto a = std::make_shared<AttachC>();
  if (needProg) a->progFd = static_cast<int>(GetU32(o, "progFd", op, true));
  Napi::Value itf = o.Get("interface");
  if (itf.IsNumber()) {
    a->ifindex = GetU32(o, "interface", op, true);
    a->ifname = std::to_string(a->ifindex);
  } else {
    a->ifname = GetString(o, "interface", op);
  }
  std::string dir = GetString(o, "direction", op);
  if (dir != "ingress" && dir != "egress") throw InvalidArg(op, "Field \"direction\" must be \"ingress\" or \"egress\"");
  a->ingress = dir == "ingress";
  a->netns = GetString(o, "netns", op, false, "");
  a->mode = GetString(o, "mode", op, false, "auto");
  if (a->mode != "auto" && a->mode != "tcx" && a->mode != "clsact") {
    throw InvalidArg(op, "Field \"mode\" must be \"auto\", \"tcx\" or \"clsact\"");
  }
  a->pinDir = GetString(o, "pinDir", op);
  return a;
}

// attach({progFd, interface, direction, netns?, mode?, pinDir}) -> {mode, action, ifindex, progId}
Napi::Value AttachJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto a = GetAttachArgs(info, "bpf.attach", true);
    return RunAsync(
        info.Env(), [a]() { DoAttach(*a); },
        [a](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("mode", a->usedMode);
          o.Set("action", a->action);
          o.Set("ifindex", a->ifindex);
          o.Set("progId", a->progId);
          return o;
        });
  });
}

// detach({interface, direction, netns?, pinDir}) -> {removed: ("tcx" | "clsact")[]}
Napi::Value DetachJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto a = GetAttachArgs(info, "bpf.detach", false);
    return RunAsync(
        info.Env(), [a]() { DoDetach(*a); },
        [a](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          Napi::Array r = Napi::Array::New(env, a->removed.size());
          for (size_t i = 0; i < a->removed.size(); i++) r.Set(i, a->removed[i]);
          o.Set("removed", r);
          o.Set("ifindex", a->ifindex);
          return o;
        });
  });
}

// attachment({interface, direction, netns?, pinDir}) -> {tcx?: {progId, linkId}, clsact?: {progId}}
Napi::Value AttachmentJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto a = GetAttachArgs(info, "bpf.attachment", false);
    return RunAsync(
        info.Env(), [a]() { DoQuery(*a); },
        [a](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("ifindex", a->ifindex);
          if (a->hasTcx) {
            Napi::Object t = Napi::Object::New(env);
            t.Set("progId", a->tcxProgId);
            t.Set("linkId", a->tcxLinkId);
            o.Set("tcx", t);
          }
          if (a->hasCls) {
            Napi::Object c = Napi::Object::New(env);
            c.Set("progId", a->clsProgId);
            o.Set("clsact", c);
          }
          return o;
        });
  });
}

}  // namespace

void RegisterBpfAttach(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "bpfAttach", AttachJs);
  Export(env, exports, "bpfDetach", DetachJs);
  Export(env, exports, "bpfAttachment", AttachmentJs);
  Export(env, exports, "bpfLinks", LinksJs);
}

}  // namespace veil
