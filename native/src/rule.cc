#include "rule.h"

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include <memory>

#include "family.h"
#include "js.h"
#include "link.h"

namespace veil {

namespace {

// What a rule matches and which table it points to: the part a rule to add or delete and a
// rule read from the kernel share.
struct RuleMatchC {
  uint8_t family = 0;
  bool hasPriority = false;
  uint32_t priority = 0;
  uint32_t table = 0;
  bool hasFwmark = false;
  uint32_t fwmark = 0;
  bool hasFwmask = false;
  uint32_t fwmask = 0;
  Addr src;
  uint8_t srcLen = 0;
  Addr dst;
  uint8_t dstLen = 0;
  std::string iif;
  std::string oif;
};

// A policy routing rule to add or delete, converted from JS on the main thread.
struct RuleC : RuleMatchC {
  uint8_t action = FR_ACT_TO_TBL;
  bool invert = false;
  int protocol = -1;
};

// A rule as read from the kernel.
struct RuleInfoC : RuleMatchC {
  uint8_t action = 0;
  uint32_t flags = 0;
  uint8_t protocol = 0;
};

// `ip [-6] rule add|del [not] [from S/L] [to D/L] [fwmark M[/K]] [iif I] [oif O] priority P
//  [table T | blackhole | unreachable | prohibit] [protocol P]`
MsgBuilder EncodeRule(const RuleC& r, bool add) {
  MsgBuilder m(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  fib_rule_hdr h{};
  h.family = r.family;
  h.dst_len = r.dstLen;
  h.src_len = r.srcLen;
  h.action = r.action;
  h.flags = r.invert ? FIB_RULE_INVERT : 0;
  if (r.action == FR_ACT_TO_TBL) h.table = r.table < 256 ? static_cast<uint8_t>(r.table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  m.Header(h);
  if (r.action == FR_ACT_TO_TBL && r.table >= 256) m.PutU32(FRA_TABLE, r.table);
  if (r.hasPriority) m.PutU32(FRA_PRIORITY, r.priority);
  if (r.hasFwmark) m.PutU32(FRA_FWMARK, r.fwmark);
  if (r.hasFwmask) m.PutU32(FRA_FWMASK, r.fwmask);
  if (r.srcLen > 0) m.Put(FRA_SRC, r.src.bytes, r.src.Len());
  if (r.dstLen > 0) m.Put(FRA_DST, r.dst.bytes, r.dst.Len());
  if (!r.iif.empty()) m.PutStr(FRA_IIFNAME, r.iif);
  if (!r.oif.empty()) m.PutStr(FRA_OIFNAME, r.oif);
  if (r.protocol >= 0) m.PutU8(FRA_PROTOCOL, static_cast<uint8_t>(r.protocol));
  return m;
}

MsgBuilder EncodeRuleDump(uint8_t family) {
  MsgBuilder m(RTM_GETRULE, 0);
  fib_rule_hdr h{};
  h.family = family;
  m.Header(h);
  return m;
}

[[noreturn]] void Malformed(const std::string& what) { throw MalformedReply("rule.parse", what); }

bool ParseRuleMsg(const nlmsghdr* nlh, RuleInfoC* out) {
  fib_rule_hdr h;
  if (!ReadHeader(nlh, RTM_NEWRULE, &h, "rule.parse", "Rule message is shorter than struct fib_rule_hdr")) return false;
  if (h.family != AF_INET && h.family != AF_INET6) return false;
  out->family = h.family;
  out->action = h.action;
  out->flags = h.flags;
  out->table = h.table;
  out->srcLen = h.src_len;
  out->dstLen = h.dst_len;
  uint8_t maxLen = h.family == AF_INET6 ? 128 : 32;
  if (h.src_len > maxLen || h.dst_len > maxLen) Malformed("Rule prefix length is out of range");
  bool attrs_ok = true;
  bool ok = ForEachMsgAttr(nlh, sizeof(fib_rule_hdr), [&](const Attr& a) {
    switch (a.type) {
      case FRA_TABLE: out->table = CheckedU32(a, &attrs_ok); break;
      case FRA_PRIORITY:
        out->hasPriority = true;
        out->priority = CheckedU32(a, &attrs_ok);
        break;
      case FRA_FWMARK:
        out->hasFwmark = true;
        out->fwmark = CheckedU32(a, &attrs_ok);
        break;
      case FRA_FWMASK:
        out->hasFwmask = true;
        out->fwmask = CheckedU32(a, &attrs_ok);
        break;
      case FRA_SRC: attrs_ok = AddrAttr(a, out->family, &out->src) && attrs_ok; break;
      case FRA_DST: attrs_ok = AddrAttr(a, out->family, &out->dst) && attrs_ok; break;
      case FRA_IIFNAME: out->iif = a.Str(); break;
      case FRA_OIFNAME: out->oif = a.Str(); break;
      case FRA_PROTOCOL: out->protocol = a.U8(); break;
    }
  });
  if (!ok || !attrs_ok) Malformed("Rule message has a truncated or mis-sized attribute");
  if ((out->srcLen && !out->src.family) || (out->dstLen && !out->dst.family)) {
    Malformed("Rule message has a prefix length but no address");
  }
  return true;
}

const char* ActionName(uint8_t a) {
  switch (a) {
    case FR_ACT_TO_TBL: return "table";
    case FR_ACT_GOTO: return "goto";
    case FR_ACT_NOP: return "nop";
    case FR_ACT_BLACKHOLE: return "blackhole";
    case FR_ACT_UNREACHABLE: return "unreachable";
    case FR_ACT_PROHIBIT: return "prohibit";
  }
  return nullptr;
}

Napi::Object RuleToJs(Napi::Env env, const RuleInfoC& r) {
  Napi::Object o = Napi::Object::New(env);
  auto numOrNull = [&](bool has, uint32_t v) { return has ? Napi::Value(Napi::Number::New(env, v)) : env.Null(); };
  auto strOrNull = [&](const std::string& s) { return s.empty() ? env.Null() : Napi::Value(Napi::String::New(env, s)); };
  o.Set("family", r.family == AF_INET6 ? 6 : 4);
  // The kernel omits FRA_PRIORITY for priority 0 (the "local" rule).
  o.Set("priority", r.priority);
  o.Set("table", r.table);
  o.Set("fwmark", numOrNull(r.hasFwmark, r.fwmark));
  o.Set("fwmask", numOrNull(r.hasFwmask, r.fwmask));
  o.Set("src", r.srcLen ? Napi::Value(Napi::String::New(env, FormatAddr(r.src) + "/" + std::to_string(r.srcLen))) : env.Null());
  o.Set("dst", r.dstLen ? Napi::Value(Napi::String::New(env, FormatAddr(r.dst) + "/" + std::to_string(r.dstLen))) : env.Null());
  o.Set("iif", strOrNull(r.iif));
  o.Set("oif", strOrNull(r.oif));
  const char* an = ActionName(r.action);
  o.Set("action", an ? std::string(an) : std::to_string(r.action));
  o.Set("invert", Napi::Boolean::New(env, (r.flags & FIB_RULE_INVERT) != 0));
  o.Set("protocol", r.protocol);
  return o;
}

RuleC RuleFromJs(const Napi::Value& v, const std::string& op) {
  if (!v.IsObject()) throw InvalidArg(op, "Each rule must be an object");
  Napi::Object o = v.As<Napi::Object>();
  RuleC r;
  uint32_t fam = GetU32(o, "family", op, true);
  if (fam != 4 && fam != 6) throw InvalidArg(op, "Field \"family\" must be 4 or 6");
  r.family = fam == 4 ? AF_INET : AF_INET6;
  uint8_t maxLen = fam == 4 ? 32 : 128;
  if (Has(o, "priority")) {
    r.hasPriority = true;
    r.priority = GetU32(o, "priority", op);
  }
  r.table = GetU32(o, "table", op);
  if (Has(o, "fwmark")) {
    r.hasFwmark = true;
    r.fwmark = GetU32(o, "fwmark", op);
  }
  if (Has(o, "fwmask")) {
    r.hasFwmask = true;
    r.fwmask = GetU32(o, "fwmask", op);
  }
  if (Has(o, "src")) {
    r.src = GetAddr(o, "src", op);
    uint32_t l = GetU32(o, "srcLen", op, true);
    if (r.src.family != r.family || l > maxLen) throw InvalidArg(op, "Field \"src\" does not fit the rule's family");
    r.srcLen = static_cast<uint8_t>(l);
  }
  if (Has(o, "dst")) {
    r.dst = GetAddr(o, "dst", op);
    uint32_t l = GetU32(o, "dstLen", op, true);
    if (r.dst.family != r.family || l > maxLen) throw InvalidArg(op, "Field \"dst\" does not fit the rule's family");
    r.dstLen = static_cast<uint8_t>(l);
  }
  r.iif = GetString(o, "iif", op, false);
  r.oif = GetString(o, "oif", op, false);
  uint32_t action = GetU32(o, "action", op, false, FR_ACT_TO_TBL);
  if (action > 255) throw InvalidArg(op, "Field \"action\" is out of range");
  r.action = static_cast<uint8_t>(action);
  r.invert = GetBool(o, "invert", op);
  if (Has(o, "protocol")) {
    uint32_t p = GetU32(o, "protocol", op);
    if (p > 255) throw InvalidArg(op, "Field \"protocol\" must be between 0 and 255");
    r.protocol = static_cast<int>(p);
  }
  return r;
}

// Element errors carry the failing rule's position.
std::vector<RuleC> RulesFromJs(const Napi::CallbackInfo& info, const std::string& op) {
  return ArrayFromJs<RuleC>(info.Length() ? info[0] : info.Env().Undefined(), op, "Expected an array of rules",
                            RuleFromJs, ElementIndex::kTag);
}

MsgBuilder EncodeRuleAdd(const RuleC& r) { return EncodeRule(r, true); }
MsgBuilder EncodeRuleDelete(const RuleC& r) { return EncodeRule(r, false); }

Napi::Value RuleModify(const Napi::CallbackInfo& info, bool add) {
  return RejectOnError(info, [add](const Napi::CallbackInfo& info) {
    const std::string op = add ? "rule.add" : "rule.delete";
    auto rules = std::make_shared<std::vector<RuleC>>(RulesFromJs(info, op));
    std::string netns = GetNetns(info, 1, op);
    bool ignoreMissing = info.Length() > 1 && info[1].IsObject() &&
                         GetBool(info[1].As<Napi::Object>(), "ignoreMissing", op);
    return RunAsync(info.Env(), [rules, netns, op, add, ignoreMissing]() {
      Socket sock(NETLINK_ROUTE, netns);
      std::vector<MsgBuilder> msgs = EncodeEach(*rules, add ? EncodeRuleAdd : EncodeRuleDelete);
      ApplyBatch(sock, msgs, op, add ? UndoBy(*rules, EncodeRuleDelete) : nullptr, !add && ignoreMissing ? ENOENT : 0);
    });
  });
}

Napi::Value RuleAdd(const Napi::CallbackInfo& info) { return RuleModify(info, true); }
Napi::Value RuleDelete(const Napi::CallbackInfo& info) { return RuleModify(info, false); }

Napi::Value RuleList(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) {
    const std::string op = "rule.list";
    uint8_t family = info.Length() > 0 && info[0].IsObject() ? GetFamilyFilter(info[0].As<Napi::Object>(), op)
                                                             : static_cast<uint8_t>(AF_UNSPEC);
    std::string netns = GetNetns(info, 1, op);
    return ListAsync<RuleInfoC>(
        info.Env(),
        [family, netns, op](std::vector<RuleInfoC>& rules) {
          Socket sock(NETLINK_ROUTE, netns);
          MsgBuilder m = EncodeRuleDump(family);
          DumpParsed(sock, m, op, ParseRuleMsg,
                     [&](const RuleInfoC& r) { return family == AF_UNSPEC || r.family == family; }, &rules);
        },
        RuleToJs);
  });
}

Napi::Value EncodeRuleJs(const Napi::CallbackInfo& info, bool add) {
  return ThrowOnError(info, [add](const Napi::CallbackInfo& info) {
    std::vector<MsgBuilder> msgs = EncodeEach(RulesFromJs(info, "rule.encode"), add ? EncodeRuleAdd : EncodeRuleDelete);
    return MessagesToJs(info.Env(), msgs);
  });
}

Napi::Value EncodeRuleAddJs(const Napi::CallbackInfo& info) { return EncodeRuleJs(info, true); }
Napi::Value EncodeRuleDeleteJs(const Napi::CallbackInfo& info) { return EncodeRuleJs(info, false); }

Napi::Value ParseRulesJs(const Napi::CallbackInfo& info) { return ParseExport<RuleInfoC>(info, "rule.parse", ParseRuleMsg, RuleToJs); }

}  // namespace

void RegisterRules(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"ruleAdd", RuleAdd},
             {"ruleDelete", RuleDelete},
             {"ruleList", RuleList},
             {"encodeRuleAdd", EncodeRuleAddJs},
             {"encodeRuleDelete", EncodeRuleDeleteJs},
             {"parseRules", ParseRulesJs}});
}

}  // namespace veil
