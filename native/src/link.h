// rtnetlink links (RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK) and the small helpers the other
// rtnetlink families share: resolving device names to ifindexes and applying a pipelined batch
// with rollback.
#pragma once

#include <napi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "netlink.h"

namespace veil {

// Adds this family's exports to the addon's export table.
void RegisterLinks(Napi::Env env, Napi::Object exports);

// The ifindex of device `name` in the socket's namespace. Throws NlError(ENODEV) naming the
// device (with `index` set to the batch position when >= 0) when it does not exist.
uint32_t ResolveIfindex(Socket& sock, const std::string& name, const std::string& op, int index = -1);

// Resolves every distinct name once; returns name -> ifindex.
std::map<std::string, uint32_t> ResolveIfindexes(Socket& sock, const std::vector<std::string>& names,
                                                 const std::vector<int>& indexes, const std::string& op);

// ifindex -> name for every link in the socket's namespace (one dump).
std::map<uint32_t, std::string> LinkNames(Socket& sock);

// Sends `msgs` pipelined. On the first failure, when `undo` is set, sends undo(i) for every
// request i that the kernel applied (best effort, in reverse order) and throws the failure,
// whose `index` is the failing request's position. When `ignore_errno` is non-zero, requests
// failing with that errno are treated as done (for idempotent deletes) and the rest continue.
void ApplyBatch(Socket& sock, std::vector<MsgBuilder>& msgs, const std::string& op,
                const std::function<MsgBuilder(size_t)>& undo, int ignore_errno = 0);

}  // namespace veil
