#include "js.h"

#include <arpa/inet.h>

namespace veil {

bool Has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

std::string GetString(const Napi::Object& o, const char* key, const std::string& op, bool required,
                      const std::string& def) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return def;
  }
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw InvalidArg(op, std::string("Field \"") + key + "\" must be a string");
  return v.As<Napi::String>().Utf8Value();
}

static double GetNumber(const Napi::Object& o, const char* key, const std::string& op) {
  Napi::Value v = o.Get(key);
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw InvalidArg(op, std::string("Field \"") + key + "\" is out of range");
    return static_cast<double>(u);
  }
  if (!v.IsNumber()) throw InvalidArg(op, std::string("Field \"") + key + "\" must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != d || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw InvalidArg(op, std::string("Field \"") + key + "\" must be an integer");
  }
  return d;
}

uint32_t GetU32(const Napi::Object& o, const char* key, const std::string& op, bool required, uint32_t def) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return def;
  }
  double d = GetNumber(o, key, op);
  if (d < 0 || d > 4294967295.0) {
    throw InvalidArg(op, std::string("Field \"") + key + "\" must be between 0 and 4294967295");
  }
  return static_cast<uint32_t>(d);
}

uint64_t GetU64(const Napi::Object& o, const char* key, const std::string& op, bool required, uint64_t def) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return def;
  }
  Napi::Value v = o.Get(key);
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw InvalidArg(op, std::string("Field \"") + key + "\" is out of range");
    return u;
  }
  double d = GetNumber(o, key, op);
  if (d < 0) throw InvalidArg(op, std::string("Field \"") + key + "\" must not be negative");
  return static_cast<uint64_t>(d);
}

int64_t GetI64(const Napi::Object& o, const char* key, const std::string& op, bool required, int64_t def) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return def;
  }
  return static_cast<int64_t>(GetNumber(o, key, op));
}

bool GetBool(const Napi::Object& o, const char* key, const std::string& op, bool def) {
  if (!Has(o, key)) return def;
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw InvalidArg(op, std::string("Field \"") + key + "\" must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::vector<uint8_t> GetBytes(const Napi::Object& o, const char* key, const std::string& op, size_t len,
                              bool required) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return {};
  }
  Napi::Value v = o.Get(key);
  if (!v.IsBuffer() && !v.IsTypedArray()) {
    throw InvalidArg(op, std::string("Field \"") + key + "\" must be a Buffer");
  }
  Napi::Uint8Array arr = v.As<Napi::Uint8Array>();
  if (len != 0 && arr.ByteLength() != len) {
    throw InvalidArg(op, std::string("Field \"") + key + "\" must be " + std::to_string(len) +
                             " bytes, got " + std::to_string(arr.ByteLength()));
  }
  return std::vector<uint8_t>(arr.Data(), arr.Data() + arr.ByteLength());
}

Napi::Object GetObject(const Napi::Object& o, const char* key, const std::string& op) {
  if (!Has(o, key) || !o.Get(key).IsObject()) {
    throw InvalidArg(op, std::string("Field \"") + key + "\" must be an object");
  }
  return o.Get(key).As<Napi::Object>();
}

Napi::Array GetArray(const Napi::Object& o, const char* key, const std::string& op, bool required) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return Napi::Array::New(o.Env(), 0);
  }
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw InvalidArg(op, std::string("Field \"") + key + "\" must be an array");
  return v.As<Napi::Array>();
}

Addr ParseAddr(const std::string& text, const std::string& op, const char* field) {
  Addr a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
  } else {
    throw InvalidArg(op, std::string("Field \"") + field + "\" is not an IPv4 or IPv6 address: \"" +
                             text.substr(0, 64) + "\"");
  }
  return a;
}

Addr GetAddr(const Napi::Object& o, const char* key, const std::string& op, bool required) {
  if (!Has(o, key)) {
    if (required) throw InvalidArg(op, std::string("Missing required field \"") + key + "\"");
    return Addr{};
  }
  return ParseAddr(GetString(o, key, op), op, key);
}

std::string FormatAddr(int family, const void* bytes) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (!inet_ntop(family, bytes, buf, sizeof(buf))) return "";
  return buf;
}

std::string FormatAddr(const Addr& a) { return FormatAddr(a.family, a.bytes); }

std::string GetNetns(const Napi::CallbackInfo& info, size_t index, const std::string& op) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return "";
  if (!info[index].IsObject()) throw InvalidArg(op, "Options must be an object");
  return GetString(info[index].As<Napi::Object>(), "netns", op, false, "");
}

Napi::Error ToJsError(Napi::Env env, const NlError& e) {
  std::string msg = e.op + ": " + e.detail;
  if (!e.extack.empty()) msg += " (" + e.extack + ")";
  Napi::Error err = Napi::Error::New(env, msg);
  Napi::Object o = err.Value();
  o.Set("code", ErrnoName(e.err));
  o.Set("errno", Napi::Number::New(env, e.err));
  o.Set("op", e.op);
  o.Set("detail", e.detail);
  if (!e.extack.empty()) o.Set("extack", e.extack);
  if (e.index >= 0) o.Set("index", Napi::Number::New(env, e.index));
  return err;
}

PromiseWorker::PromiseWorker(Napi::Env env, std::function<void()> work,
                             std::function<Napi::Value(Napi::Env)> done)
    : Napi::AsyncWorker(env, "veil.netlink"), deferred_(Napi::Promise::Deferred::New(env)),
      work_(std::move(work)), done_(std::move(done)) {}

void PromiseWorker::Execute() {
  try {
    work_();
  } catch (const NlError& e) {
    error_ = e;
    SetError(e.what());
  } catch (const std::exception& e) {
    error_ = NlError(EIO, "native", e.what());
    SetError(e.what());
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  try {
    deferred_.Resolve(done_(env));
  } catch (const NlError& e) {
    deferred_.Reject(ToJsError(env, e).Value());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  if (error_) {
    deferred_.Reject(ToJsError(Env(), *error_).Value());
  } else {
    deferred_.Reject(e.Value());
  }
}

Napi::Value RunAsync(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done) {
  auto* w = new PromiseWorker(env, std::move(work), std::move(done));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value RunAsync(Napi::Env env, std::function<void()> work) {
  return RunAsync(env, std::move(work), [](Napi::Env env) { return env.Undefined(); });
}

Napi::Value RejectOnError(const Napi::CallbackInfo& info,
                          const std::function<Napi::Value(const Napi::CallbackInfo&)>& fn) {
  Napi::Env env = info.Env();
  try {
    return fn(info);
  } catch (const NlError& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(ToJsError(env, e).Value());
    return d.Promise();
  }
}

Napi::Value ThrowOnError(const Napi::CallbackInfo& info,
                         const std::function<Napi::Value(const Napi::CallbackInfo&)>& fn) {
  try {
    return fn(info);
  } catch (const NlError& e) {
    throw ToJsError(info.Env(), e);
  }
}

Napi::Value MessagesToJs(Napi::Env env, std::vector<MsgBuilder>& msgs) {
  Napi::Array arr = Napi::Array::New(env, msgs.size());
  for (size_t i = 0; i < msgs.size(); i++) {
    auto& b = msgs[i].Finish();
    arr.Set(i, Napi::Buffer<uint8_t>::Copy(env, b.data(), b.size()));
  }
  return arr;
}

void ForEachMessageInBuffer(const Napi::Value& v, const std::string& op,
                            const std::function<void(const nlmsghdr*)>& fn) {
  if (!v.IsBuffer() && !v.IsTypedArray()) throw InvalidArg(op, "Expected a Buffer");
  Napi::Uint8Array arr = v.As<Napi::Uint8Array>();
  // Copy into aligned storage: Buffers may start at any offset in their ArrayBuffer.
  std::vector<uint32_t> store((arr.ByteLength() + 3) / 4 + 1, 0);
  std::memcpy(store.data(), arr.Data(), arr.ByteLength());
  auto* p = reinterpret_cast<nlmsghdr*>(store.data());
  int n = static_cast<int>(arr.ByteLength());
  for (; NLMSG_OK(p, n); p = NLMSG_NEXT(p, n)) fn(p);
  if (n != 0) throw NlError(kErrMalformedReply, op, "Truncated netlink message");
}

}  // namespace veil
