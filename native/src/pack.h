// Packed batches from agent/netlink/pack.ts: fixed-size records in one Buffer (host byte order)
// plus a short list of interned strings. The TS side validated everything, but nothing here
// trusts it: the Buffer's length must be a whole number of records, every read is bounds-checked
// against the record size, and callers range-check every field they decode.
//
// Main thread only (reads N-API values); callers decode into plain C++ structs right away.
#pragma once

#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "js.h"

namespace veil {

class RecordReader {
 public:
  RecordReader(const Napi::Value& v, size_t record_size, const std::string& op) : size_(record_size) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw InvalidArg(op, "Expected a Buffer of packed records");
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    data_ = a.Data();
    len_ = a.ByteLength();
    if (record_size == 0 || len_ % record_size != 0) {
      throw InvalidArg(op, "Packed batch of " + std::to_string(len_) + " bytes is not a whole number of " +
                               std::to_string(record_size) + "-byte records");
    }
  }

  size_t Count() const { return len_ / size_; }

  // Field reads inside record i; a field outside the record is a programming error in the
  // caller's layout, reported rather than read.
  const uint8_t* Field(size_t i, size_t off, size_t len) const {
    if (i >= Count() || off + len > size_) throw NlError(EINVAL, "pack", "Packed field outside its record");
    return data_ + i * size_ + off;
  }
  uint8_t U8(size_t i, size_t off) const { return *Field(i, off, 1); }
  uint32_t U32(size_t i, size_t off) const {
    uint32_t v;
    std::memcpy(&v, Field(i, off, 4), 4);
    return v;
  }

 private:
  size_t size_;
  const uint8_t* data_ = nullptr;
  size_t len_ = 0;
};

// The interned strings of a packed batch: an array of 1..max_len-byte strings without NUL.
inline std::vector<std::string> GetStringList(const Napi::Value& v, const std::string& op, const char* what,
                                              size_t max_len) {
  if (!v.IsArray()) throw InvalidArg(op, std::string("Expected an array of ") + what);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) throw InvalidArg(op, std::string("Each of the ") + what + " must be a string");
    std::string str = s.As<Napi::String>().Utf8Value();
    if (str.empty() || str.size() > max_len || str.find('\0') != std::string::npos) {
      throw InvalidArg(op, std::string("Each of the ") + what + " must be 1 to " + std::to_string(max_len) +
                               " bytes without NUL");
    }
    out.push_back(std::move(str));
  }
  return out;
}

// An array of unsigned 32-bit integers (e.g. the ifindexes an encode export uses for names).
inline std::vector<uint32_t> GetU32List(const Napi::Value& v, const std::string& op, const char* what) {
  if (!v.IsArray()) throw InvalidArg(op, std::string("Expected an array of ") + what);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<uint32_t> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value n = a.Get(i);
    double d = n.IsNumber() ? n.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
      throw InvalidArg(op, std::string("Each of the ") + what + " must be an integer from 0 to 4294967295");
    }
    out.push_back(static_cast<uint32_t>(d));
  }
  return out;
}

}  // namespace veil
