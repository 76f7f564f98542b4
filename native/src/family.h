// The shapes every netlink family's exports share, written once: arrays of JS objects into C++
// structs (main thread), a list of parsed kernel objects back into a JS array, the parse-only
// exports, dumps filtered into a vector, and batches encoded item by item.
//
// The worker-side helpers (AddrAttr, EncodeEach, DumpParsed, UndoBy) touch no N-API value.
#pragma once

#include <napi.h>
#include <netinet/in.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "js.h"
#include "netlink.h"

namespace veil {

// Copies an address attribute of the message's family (4 or 16 bytes); false when its length
// is wrong.
inline bool AddrAttr(const Attr& a, uint8_t family, Addr* out) {
  size_t want = family == AF_INET6 ? 16 : 4;
  if (a.len != want) return false;
  out->family = family;
  std::memcpy(out->bytes, a.data, want);
  return true;
}

// A u32 attribute's value; clears *ok when the attribute is shorter than 4 bytes (Attr::U32
// still reads only what is there).
inline uint32_t CheckedU32(const Attr& a, bool* ok) {
  if (a.len < 4) *ok = false;
  return a.U32();
}

// The fixed family header of a message of type `type` (false for any other type); a message
// too short to hold it is a malformed reply: NlError(kErrMalformedReply, op, what).
template <typename H>
bool ReadHeader(const nlmsghdr* nlh, uint16_t type, H* header, const std::string& op, const char* what) {
  if (nlh->nlmsg_type != type) return false;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(H))) throw MalformedReply(op, what);
  std::memcpy(header, NLMSG_DATA(nlh), sizeof(H));
  return true;
}

// Runs fn; an NlError it throws gets `index` (the position of the object being handled).
template <typename Fn>
decltype(auto) AtIndex(size_t index, Fn&& fn) {
  try {
    return fn();
  } catch (NlError& e) {
    e.index = static_cast<int>(index);
    throw;
  }
}

// The optional `family` field of a list filter: 0 (or absent) = both, 4 or 6.
inline uint8_t GetFamilyFilter(const Napi::Object& f, const std::string& op) {
  uint32_t fam = GetU32(f, "family", op);
  if (fam != 0 && fam != 4 && fam != 6) throw InvalidArg(op, "Field \"family\" must be 4 or 6");
  return fam == 4 ? AF_INET : fam == 6 ? AF_INET6 : AF_UNSPEC;
}

// Whether the errors of an array's elements carry the element's position.
enum class ElementIndex { kOmit, kTag };

// Converts a JS array with from_js(element, op); anything but an array is `expected`.
template <typename T, typename FromJsFn>
std::vector<T> ArrayFromJs(const Napi::Value& v, const std::string& op, const char* expected, FromJsFn from_js,
                           ElementIndex tag = ElementIndex::kOmit) {
  if (!v.IsArray()) throw InvalidArg(op, expected);
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<T> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    if (tag == ElementIndex::kTag) {
      out.push_back(AtIndex(i, [&] { return from_js(arr.Get(i), op); }));
    } else {
      out.push_back(from_js(arr.Get(i), op));
    }
  }
  return out;
}

// The messages that encode(item) builds for every item, in order.
template <typename T, typename EncodeFn>
std::vector<MsgBuilder> EncodeEach(const std::vector<T>& items, EncodeFn encode) {
  std::vector<MsgBuilder> msgs;
  msgs.reserve(items.size());
  for (const T& item : items) msgs.push_back(encode(item));
  return msgs;
}

// The undo of a batch built by EncodeEach: request i reverts items[i] (items must outlive it).
template <typename T, typename EncodeFn>
std::function<MsgBuilder(size_t)> UndoBy(const std::vector<T>& items, EncodeFn encode) {
  return [&items, encode](size_t i) { return encode(items[i]); };
}

// Dumps with request `m` and appends every reply that parse(reply, &item) accepts and keep(item)
// wants.
template <typename T, typename ParseFn, typename KeepFn>
void DumpParsed(Socket& sock, MsgBuilder& m, const std::string& op, ParseFn parse, KeepFn keep, std::vector<T>* out) {
  sock.Dump(m, op, [&](const nlmsghdr* r) {
    T item;
    if (parse(r, &item) && keep(item)) out->push_back(std::move(item));
  });
}

// A JS array of to_js(env, item) for every item; each object is built in its own handle scope
// (lists may hold thousands).
template <typename T, typename ToJsFn>
Napi::Array ToJsArray(Napi::Env env, const std::vector<T>& items, ToJsFn to_js) {
  Napi::Array arr = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) {
    Napi::HandleScope scope(env);
    arr.Set(i, to_js(env, items[i]));
  }
  return arr;
}

// An async list: work(items) fills the vector on the worker thread; the promise resolves with
// the JS array of to_js(env, item).
template <typename T, typename WorkFn, typename ToJsFn>
Napi::Value ListAsync(Napi::Env env, WorkFn work, ToJsFn to_js) {
  auto items = std::make_shared<std::vector<T>>();
  return RunAsync(
      env, [items, work]() { work(*items); },
      [items, to_js](Napi::Env env) -> Napi::Value { return ToJsArray(env, *items, to_js); });
}

// The body of a parse-only export parseXxx(Buffer): every message of the Buffer that
// parse(message, &item) accepts, as a JS array of to_js(env, item).
template <typename T, typename ParseFn, typename ToJsFn>
Napi::Value ParseExport(const Napi::CallbackInfo& info, const std::string& op, ParseFn parse, ToJsFn to_js) {
  return ThrowOnError(info, [&](const Napi::CallbackInfo& info) -> Napi::Value {
    std::vector<T> items;
    ForEachMessageInBuffer(info.Length() ? info[0] : info.Env().Undefined(), op, [&](const nlmsghdr* r) {
      T item;
      if (parse(r, &item)) items.push_back(std::move(item));
    });
    return ToJsArray(info.Env(), items, to_js);
  });
}

// A family's export table.
struct ExportEntry {
  const char* name;
  ExportFn fn;
};

inline void ExportAll(Napi::Env env, Napi::Object exports, std::initializer_list<ExportEntry> entries) {
  for (const ExportEntry& e : entries) Export(env, exports, e.name, e.fn);
}

}  // namespace veil
