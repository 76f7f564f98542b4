// XFRM (IPsec) over NETLINK_XFRM: security associations (states) and security policies.
//
// Exports (all kernel-facing ones take { netns? } first and return Promises):
//   xfrmStatesApply(opts, states[], update)      NEWSA (create-exclusive) / UPDSA, pipelined;
//                                                a failed create batch is rolled back
//   xfrmStatesDelete(opts, ids[], ignoreMissing) DELSA, pipelined; resolves the number deleted
//   xfrmStateGet(opts, id)                       GETSA; resolves null when absent
//   xfrmStatesList(opts)                         GETSA dump
//   xfrmStatesFlush(opts, proto)                 FLUSHSA
//   xfrmPoliciesApply(opts, packed, count, update)  policies as records of agent/xfrm/pack.ts
//   xfrmPoliciesDelete / xfrmPolicyGet / xfrmPoliciesList / xfrmPoliciesFlush
// and the encode-only / parse-only twins used by the unit tests (same code path):
//   encodeXfrmStates(states[], update), encodeXfrmStateIds(ids[], "get"|"delete"),
//   encodeXfrmStatesFlush(proto), encodeXfrmStatesDump(), parseXfrmStates(buffer),
//   encodeXfrmPolicies(packed, count, update), encodeXfrmPolicyIds(ids[], "get"|"delete"),
//   encodeXfrmPoliciesFlush(), encodeXfrmPoliciesDump(), parseXfrmPolicies(buffer).
//
// Key material enters only through states[].aead.key, is copied into C++ storage that is wiped
// (explicit_bzero) when the request is done, and never leaves: parsed states report the
// algorithm name and key length only, and the key bytes of kernel replies are wiped in place.
#pragma once

#include <napi.h>

namespace veil {

// Adds this family's exports to the addon's export table.
void RegisterXfrm(Napi::Env env, Napi::Object exports);

}  // namespace veil
