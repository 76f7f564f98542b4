// N-API glue shared by every family: argument conversion into plain C++ structs (main thread),
// promise-returning workers (the worker touches only C++ data), and errors that carry the errno
// name, the operation and the kernel's extended-ack text into JavaScript.
#pragma once

#include <napi.h>
#include <netinet/in.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netlink.h"

namespace veil {

// An IPv4 or IPv6 address in network byte order.
struct Addr {
  int family = 0;  // AF_INET or AF_INET6; 0 = unset
  uint8_t bytes[16] = {0};
  size_t Len() const { return family == AF_INET6 ? 16 : 4; }
};

// A JS value that failed validation. Thrown while converting arguments; reported to JS as an
// error with code "EINVAL" (the TS layer validates first, so this is the C++ side refusing to
// trust its input).
inline NlError InvalidArg(const std::string& op, const std::string& msg) {
  return NlError(EINVAL, op, msg);
}

// Converters: each throws InvalidArg with the field name when the value has the wrong type or
// range. `field` is used only in messages.
std::string GetString(const Napi::Object& o, const char* key, const std::string& op, bool required = true,
                      const std::string& def = "");
uint32_t GetU32(const Napi::Object& o, const char* key, const std::string& op, bool required = false,
                uint32_t def = 0);
uint64_t GetU64(const Napi::Object& o, const char* key, const std::string& op, bool required = false,
                uint64_t def = 0);
int64_t GetI64(const Napi::Object& o, const char* key, const std::string& op, bool required = false,
               int64_t def = 0);
bool GetBool(const Napi::Object& o, const char* key, const std::string& op, bool def = false);
bool Has(const Napi::Object& o, const char* key);
// Buffer of exactly `len` bytes (or any length when len == 0).
std::vector<uint8_t> GetBytes(const Napi::Object& o, const char* key, const std::string& op,
                              size_t len, bool required = true);
Napi::Object GetObject(const Napi::Object& o, const char* key, const std::string& op);
Napi::Array GetArray(const Napi::Object& o, const char* key, const std::string& op, bool required = true);
// Parses a textual IPv4/IPv6 address.
Addr ParseAddr(const std::string& text, const std::string& op, const char* field);
Addr GetAddr(const Napi::Object& o, const char* key, const std::string& op, bool required = true);
std::string FormatAddr(const Addr& a);
std::string FormatAddr(int family, const void* bytes);

// The first argument of every kernel-facing export: { netns?: string }.
std::string GetNetns(const Napi::CallbackInfo& info, size_t index, const std::string& op);

// Builds the JS error object for an NlError.
Napi::Error ToJsError(Napi::Env env, const NlError& e);

// Runs `work` on the libuv thread pool and returns a Promise resolved with `done(env)`.
// `work` must not touch any N-API value; `done` runs on the main thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done);
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::optional<NlError> error_;
};

// Queues work and returns its promise.
Napi::Value RunAsync(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done);
// The same for work that resolves undefined (kernel-changing verbs).
Napi::Value RunAsync(Napi::Env env, std::function<void()> work);

// Wraps an export so that an NlError thrown while converting arguments becomes a rejected
// promise (async exports) instead of a synchronous throw.
Napi::Value RejectOnError(const Napi::CallbackInfo& info,
                          const std::function<Napi::Value(const Napi::CallbackInfo&)>& fn);

// For synchronous exports (encoders, parsers): NlError becomes a thrown JS error.
Napi::Value ThrowOnError(const Napi::CallbackInfo& info,
                         const std::function<Napi::Value(const Napi::CallbackInfo&)>& fn);

// Copies built messages into an array of Buffers (for the encode-only exports used by tests).
Napi::Value MessagesToJs(Napi::Env env, std::vector<MsgBuilder>& msgs);

// Calls fn for every netlink message in a JS Buffer (for the parse exports used by tests);
// throws kErrMalformedReply on a truncated message.
void ForEachMessageInBuffer(const Napi::Value& v, const std::string& op,
                            const std::function<void(const nlmsghdr*)>& fn);

// Export registration used by each family's Register function.
using ExportFn = Napi::Value (*)(const Napi::CallbackInfo&);
inline void Export(Napi::Env env, Napi::Object exports, const char* name, ExportFn fn) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace veil
