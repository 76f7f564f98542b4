// eBPF objects and maps through libbpf 1.1. Everything that makes a bpf() call runs on a worker
// thread (PromiseWorker); only argument conversion and result building touch N-API.
#include "bpf.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "js.h"

namespace veil {

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) close(fd_);
}

OwnedFd& OwnedFd::operator=(OwnedFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

namespace {

// libbpf reports through one process-wide print callback. The callback appends to the calling
// thread's capture buffer when a load on that thread asked for it (the verifier log and libbpf's
// own reasons end up in the error message) and discards everything else, so libbpf never writes
// to the agent's stderr. thread_local: each worker captures only its own load.
thread_local std::string* tls_capture = nullptr;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!tls_capture || level == LIBBPF_DEBUG) return 0;
  // One call can carry the whole verifier log (libbpf prints it with a single "%s"), so size the
  // text first: a fixed buffer would keep its head and lose the reason at its end.
  va_list measure;
  va_copy(measure, args);
  int n = vsnprintf(nullptr, 0, fmt, measure);
  va_end(measure);
  if (n <= 0) return 0;
  std::string text(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(text.data(), text.size(), fmt, args);
  text.resize(static_cast<size_t>(n));
  tls_capture->append(text);
  // Keep the tail, where the verifier states why it refused.
  if (tls_capture->size() > 16384) tls_capture->erase(0, tls_capture->size() - 16384);
  return 0;
}

class CaptureLibbpf {
 public:
  CaptureLibbpf() { tls_capture = &text; }
  ~CaptureLibbpf() { tls_capture = nullptr; }
  std::string Tail(size_t max = 3000) const {
    std::string t = text.size() > max ? text.substr(text.size() - max) : text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  }
  std::string text;
};

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// The kernel's "operation not supported" for a map type without batch ops is ENOTSUPP (524),
// an internal errno that userspace sees as is.
constexpr int kENOTSUPP = 524;
bool NoBatchSupport(int err) { return err == kENOTSUPP || err == EOPNOTSUPP; }

int PossibleCpus() {
  int n = libbpf_num_possible_cpus();
  return n > 0 ? n : 1;
}

// ---------------------------------------------------------------------------------------------
// Loaded objects

struct ObjState {
  bpf_object* obj = nullptr;
  std::string path;
  ~ObjState() {
    if (obj) bpf_object__close(obj);
  }
};

struct ProgInfoC {
  std::string name, section;
  int fd = -1;
  uint32_t id = 0;
  uint32_t type = 0;
};

struct MapInfoC {
  std::string name;
  int fd = -1;
  uint32_t id = 0, type = 0, keySize = 0, valueSize = 0, maxEntries = 0, flags = 0;
  std::string pinPath;
  bool reused = false;  // an existing pinned map was adopted
};

struct LoadSpec {
  std::string path;
  std::string pinDir;
  bool hasPrograms = false;
  std::vector<std::string> programs;
  std::map<std::string, std::vector<uint8_t>> rodata;
  std::map<std::string, uint32_t> maxEntries;
  std::map<std::string, int> reuseMaps;
};

struct LoadResult {
  std::unique_ptr<ObjState> state;
  std::vector<ProgInfoC> progs;
  std::vector<MapInfoC> maps;
};

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "\"" : ", \"") + x + "\"";
  return s.empty() ? "none" : s;
}

// Sets the `const volatile` variable `var` in .rodata to `value` before load, through the BTF
// DATASEC that describes .rodata (offset and size of each variable).
void SetRodata(bpf_object* obj, const std::string& var, const std::vector<uint8_t>& value,
               const std::string& op, const std::string& path) {
  bpf_map* map = bpf_object__find_map_by_name(obj, ".rodata");
  const btf* b = bpf_object__btf(obj);
  int sec = b ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  if (!map || sec < 0) {
    throw NlError(ENOENT, op, "Object \"" + path + "\" has no .rodata (no const volatile variables); cannot set \"" + var + "\"");
  }
  const btf_type* t = btf__type_by_id(b, sec);
  const btf_var_secinfo* vs = btf_var_secinfos(t);
  for (int i = 0; i < btf_vlen(t); i++, vs++) {
    const btf_type* vt = btf__type_by_id(b, vs->type);
    if (!vt || var != btf__name_by_offset(b, vt->name_off)) continue;
    if (vs->size != value.size()) {
      throw NlError(EINVAL, op, "Variable \"" + var + "\" is " + std::to_string(vs->size) + " bytes, got " +
                                    std::to_string(value.size()));
    }
    size_t size = 0;
    const void* init = bpf_map__initial_value(map, &size);
    if (!init || vs->offset + vs->size > size) throw NlError(EINVAL, op, "Cannot read the initial .rodata of \"" + path + "\"");
    std::vector<uint8_t> data(static_cast<const uint8_t*>(init), static_cast<const uint8_t*>(init) + size);
    std::memcpy(data.data() + vs->offset, value.data(), value.size());
    int ret = bpf_map__set_initial_value(map, data.data(), data.size());
    if (ret < 0) throw BpfError(ret, op, "Cannot set .rodata variable \"" + var + "\"");
    return;
  }
  throw NlError(ENOENT, op, "Object \"" + path + "\" has no const volatile variable \"" + var + "\"");
}

LoadResult LoadObject(const LoadSpec& s) {
  const std::string op = "bpf.load";
  struct stat st {};
  if (stat(s.path.c_str(), &st) != 0) {
    int e = errno;
    throw NlError(e, op, "Cannot read eBPF object \"" + s.path + "\": " + strerror(e) + "; build it with \"npm run build\"");
  }
  EnsureBpffsDir(s.pinDir, op);
  CaptureLibbpf cap;
  LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = s.pinDir.c_str());
  LoadResult r;
  r.state = std::make_unique<ObjState>();
  r.state->path = s.path;
  r.state->obj = bpf_object__open_file(s.path.c_str(), &oo);
  if (!r.state->obj) {
    int e = errno ? errno : EINVAL;
    std::string why = cap.Tail(400);
    throw BpfError(-e, op, "Cannot open eBPF object \"" + s.path + "\"" + (why.empty() ? "" : ": " + why));
  }
  bpf_object* obj = r.state->obj;

  // Programs: load only the requested ones.
  std::vector<std::string> names;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) names.push_back(bpf_program__name(prog));
  if (s.hasPrograms) {
    for (auto& want : s.programs) {
      if (std::find(names.begin(), names.end(), want) == names.end()) {
        throw NlError(ENOENT, op, "Program \"" + want + "\" is not in \"" + s.path + "\"; it has " + Join(names));
      }
    }
    bpf_object__for_each_program(prog, obj) {
      bool on = std::find(s.programs.begin(), s.programs.end(), bpf_program__name(prog)) != s.programs.end();
      bpf_program__set_autoload(prog, on);
    }
  }
  for (auto& [var, value] : s.rodata) SetRodata(obj, var, value, op, s.path);
  for (auto& [name, n] : s.maxEntries) {
    bpf_map* m = bpf_object__find_map_by_name(obj, name.c_str());
    if (!m) throw NlError(ENOENT, op, "Map \"" + name + "\" is not in \"" + s.path + "\"; cannot set its size");
    int ret = bpf_map__set_max_entries(m, n);
    if (ret < 0) throw BpfError(ret, op, "Cannot set max_entries of map \"" + name + "\"");
  }
  for (auto& [name, fd] : s.reuseMaps) {
    bpf_map* m = bpf_object__find_map_by_name(obj, name.c_str());
    if (!m) continue;  // an object that does not use this shared map
    int ret = bpf_map__reuse_fd(m, fd);
    if (ret < 0) throw BpfError(ret, op, "Cannot share map \"" + name + "\" (fd " + std::to_string(fd) + ")");
  }
  int ret = bpf_object__load(obj);
  if (ret < 0) {
    std::string why = cap.Tail();
    throw BpfError(ret, op, "Cannot load eBPF object \"" + s.path + "\"" + (why.empty() ? "" : ": " + why));
  }

  bpf_object__for_each_program(prog, obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;  // not loaded (autoload off)
    ProgInfoC p;
    p.name = bpf_program__name(prog);
    p.section = bpf_program__section_name(prog);
    p.fd = fd;
    p.type = bpf_program__type(prog);
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) p.id = info.id;
    r.progs.push_back(std::move(p));
  }
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    MapInfoC m;
    m.name = bpf_map__name(map);
    m.fd = bpf_map__fd(map);
    m.type = bpf_map__type(map);
    m.keySize = bpf_map__key_size(map);
    m.valueSize = bpf_map__value_size(map);
    m.maxEntries = bpf_map__max_entries(map);
    m.flags = bpf_map__map_flags(map);
    if (const char* pp = bpf_map__pin_path(map)) m.pinPath = pp;
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (m.fd >= 0 && bpf_obj_get_info_by_fd(m.fd, &info, &len) == 0) m.id = info.id;
    r.maps.push_back(std::move(m));
  }
  return r;
}

Napi::Value LoadJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.load";
    auto spec = std::make_shared<LoadSpec>();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
      throw InvalidArg(op, "Expected (objectPath: string, options: object)");
    }
    spec->path = info[0].As<Napi::String>().Utf8Value();
    Napi::Object o = info[1].As<Napi::Object>();
    spec->pinDir = GetString(o, "pinDir", op);
    if (Has(o, "programs")) {
      spec->hasPrograms = true;
      Napi::Array a = GetArray(o, "programs", op);
      for (uint32_t i = 0; i < a.Length(); i++) {
        if (!a.Get(i).IsString()) throw InvalidArg(op, "Field \"programs\" must hold strings");
        spec->programs.push_back(a.Get(i).As<Napi::String>().Utf8Value());
      }
    }
    auto eachKey = [&](const char* field, const std::function<void(const std::string&, const Napi::Object&)>& fn) {
      if (!Has(o, field)) return;
      Napi::Object m = GetObject(o, field, op);
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) fn(keys.Get(i).As<Napi::String>().Utf8Value(), m);
    };
    eachKey("rodata", [&](const std::string& k, const Napi::Object& m) { spec->rodata[k] = GetBytes(m, k.c_str(), op, 0); });
    eachKey("maxEntries", [&](const std::string& k, const Napi::Object& m) { spec->maxEntries[k] = GetU32(m, k.c_str(), op, true); });
    eachKey("reuseMaps", [&](const std::string& k, const Napi::Object& m) {
      spec->reuseMaps[k] = static_cast<int>(GetU32(m, k.c_str(), op, true));
    });
    auto result = std::make_shared<LoadResult>();
    return RunAsync(
        info.Env(), [spec, result]() { *result = LoadObject(*spec); },
        [result](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          ObjState* st = result->state.release();
          out.Set("handle", Napi::External<ObjState>::New(env, st, [](Napi::Env, ObjState* p) { delete p; }));
          Napi::Array progs = Napi::Array::New(env, result->progs.size());
          for (size_t i = 0; i < result->progs.size(); i++) {
            auto& p = result->progs[i];
            Napi::Object po = Napi::Object::New(env);
            po.Set("name", p.name);
            po.Set("section", p.section);
            po.Set("fd", p.fd);
            po.Set("id", p.id);
            po.Set("type", p.type);
            progs.Set(i, po);
          }
          Napi::Array maps = Napi::Array::New(env, result->maps.size());
          for (size_t i = 0; i < result->maps.size(); i++) {
            auto& m = result->maps[i];
            Napi::Object mo = Napi::Object::New(env);
            mo.Set("name", m.name);
            mo.Set("fd", m.fd);
            mo.Set("id", m.id);
            mo.Set("type", m.type);
            mo.Set("keySize", m.keySize);
            mo.Set("valueSize", m.valueSize);
            mo.Set("maxEntries", m.maxEntries);
            mo.Set("flags", m.flags);
            if (!m.pinPath.empty()) mo.Set("pinPath", m.pinPath);
            maps.Set(i, mo);
          }
          out.Set("programs", progs);
          out.Set("maps", maps);
          return out;
        });
  });
}

// Closes a loaded object: its program and map fds close; programs stay alive only while
// attached, maps while pinned or used by a program.
Napi::Value CloseJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "bpfClose: expected an object handle");
  }
  ObjState* st = info[0].As<Napi::External<ObjState>>().Data();
  if (st->obj) {
    bpf_object__close(st->obj);
    st->obj = nullptr;
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Maps by fd or pinned path

struct MapRef {
  int fd = -1;
  std::string path;
};

MapRef GetMapRef(const Napi::Value& v, const std::string& op) {
  MapRef r;
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 1e9 || d != static_cast<int>(d)) throw InvalidArg(op, "Map fd must be a non-negative integer");
    r.fd = static_cast<int>(d);
  } else if (v.IsString()) {
    r.path = v.As<Napi::String>().Utf8Value();
  } else {
    throw InvalidArg(op, "Map must be an fd (number) or a pinned path (string)");
  }
  return r;
}

// An open map: borrowed fd, or one opened from a pinned path (closed on destruction), with the
// kernel's description of it.
struct OpenMap {
  OwnedFd owned;
  int fd = -1;
  bpf_map_info info{};
  std::string label;  // for messages
  uint32_t ValueBytes() const {
    return IsPerCpu(info.type) ? ((info.value_size + 7) / 8) * 8 * PossibleCpus() : info.value_size;
  }
};

void OpenMapRef(const MapRef& ref, const std::string& op, OpenMap* m) {
  if (!ref.path.empty()) {
    int fd = bpf_obj_get(ref.path.c_str());
    if (fd < 0) {
      throw BpfError(fd, op, "Cannot open pinned map \"" + ref.path + "\"; is the datapath loaded with this pin directory?");
    }
    m->owned = OwnedFd(fd);
    m->fd = fd;
  } else {
    m->fd = ref.fd;
  }
  uint32_t len = sizeof(m->info);
  int ret = bpf_obj_get_info_by_fd(m->fd, &m->info, &len);
  if (ret < 0) throw BpfError(ret, op, "Descriptor " + std::to_string(m->fd) + " is not a BPF map");
  m->label = "map \"" + std::string(m->info.name) + "\"";
  if (m->info.type == BPF_MAP_TYPE_RINGBUF) {
    throw NlError(EINVAL, op, "The " + m->label + " is a ring buffer; read it with a ring-buffer reader");
  }
}

void CheckLen(size_t got, size_t want, const char* what, const OpenMap& m, const std::string& op) {
  if (got != want) {
    throw NlError(EINVAL, op, std::string(what) + " is " + std::to_string(got) + " bytes but " + m.label + " takes " +
                                  std::to_string(want));
  }
}

// Holds the map reference and the byte arguments of one map call, converted on the main thread.
struct MapCall {
  MapRef ref;
  std::vector<uint8_t> key, value;
  uint64_t flags = 0;
  std::string method = "auto";
  uint32_t chunk = 0;
};

std::vector<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const std::string& op, const char* name) {
  if (info.Length() <= i || !(info[i].IsBuffer() || info[i].IsTypedArray())) {
    throw InvalidArg(op, std::string("Argument \"") + name + "\" must be a Buffer");
  }
  auto a = info[i].As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

Napi::Object MapInfoToJs(Napi::Env env, const bpf_map_info& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(i.name));
  o.Set("id", i.id);
  o.Set("type", i.type);
  o.Set("keySize", i.key_size);
  o.Set("valueSize", i.value_size);
  o.Set("maxEntries", i.max_entries);
  o.Set("flags", i.map_flags);
  o.Set("perCpu", IsPerCpu(i.type));
  o.Set("possibleCpus", PossibleCpus());
  return o;
}

Napi::Value MapInfoJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.info";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    auto out = std::make_shared<bpf_map_info>();
    return RunAsync(
        info.Env(),
        [c, out, op]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          *out = m.info;
        },
        [out](Napi::Env env) -> Napi::Value { return MapInfoToJs(env, *out); });
  });
}

// lookup(map, key) -> Buffer | null (per-CPU maps: one value per possible CPU, each rounded up
// to 8 bytes, concatenated).
Napi::Value MapLookupJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.lookup";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    c->key = BufferArg(info, 1, op, "key");
    auto found = std::make_shared<bool>(false);
    return RunAsync(
        info.Env(),
        [c, op, found]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          CheckLen(c->key.size(), m.info.key_size, "Key", m, op);
          c->value.assign(m.ValueBytes(), 0);
          int ret = bpf_map_lookup_elem(m.fd, c->key.data(), c->value.data());
          if (ret == -ENOENT) return;
          if (ret < 0) throw BpfError(ret, op, "Lookup in " + m.label + " failed");
          *found = true;
        },
        [c, found](Napi::Env env) -> Napi::Value {
          if (!*found) return env.Null();
          return Napi::Buffer<uint8_t>::Copy(env, c->value.data(), c->value.size());
        });
  });
}

// update(map, key, value, flags) — flags BPF_ANY / BPF_NOEXIST / BPF_EXIST.
Napi::Value MapUpdateJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.update";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    c->key = BufferArg(info, 1, op, "key");
    c->value = BufferArg(info, 2, op, "value");
    if (info.Length() > 3 && info[3].IsNumber()) c->flags = info[3].As<Napi::Number>().Uint32Value();
    return RunAsync(info.Env(), [c, op]() {
      OpenMap m;
      OpenMapRef(c->ref, op, &m);
      CheckLen(c->key.size(), m.info.key_size, "Key", m, op);
      CheckLen(c->value.size(), m.ValueBytes(), "Value", m, op);
      int ret = bpf_map_update_elem(m.fd, c->key.data(), c->value.data(), c->flags);
      if (ret < 0) throw BpfError(ret, op, "Update of " + m.label + " failed");
    });
  });
}

// delete(map, key) -> true when the key existed.
Napi::Value MapDeleteJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.delete";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    c->key = BufferArg(info, 1, op, "key");
    auto existed = std::make_shared<bool>(false);
    return RunAsync(
        info.Env(),
        [c, op, existed]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          CheckLen(c->key.size(), m.info.key_size, "Key", m, op);
          int ret = bpf_map_delete_elem(m.fd, c->key.data());
          if (ret == -ENOENT) return;
          if (ret < 0) throw BpfError(ret, op, "Delete from " + m.label + " failed");
          *existed = true;
        },
        [existed](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *existed); });
  });
}

struct BatchOut {
  uint32_t count = 0;
  std::string method;
};

// updateBatch(map, keys, values, {flags, method}) -> {count, method}: keys and values are the
// entries concatenated. BPF_MAP_UPDATE_BATCH where the map type has it, else one update per entry.
// On failure nothing after the failing entry is written; `index` names it.
Napi::Value MapUpdateBatchJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.updateBatch";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    c->key = BufferArg(info, 1, op, "keys");
    c->value = BufferArg(info, 2, op, "values");
    if (info.Length() > 3 && info[3].IsObject()) {
      Napi::Object o = info[3].As<Napi::Object>();
      c->flags = GetU32(o, "flags", op);
      c->method = GetString(o, "method", op, false, "auto");
    }
    auto out = std::make_shared<BatchOut>();
    return RunAsync(
        info.Env(),
        [c, op, out]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          uint32_t ks = m.info.key_size, vs = m.ValueBytes();
          if (ks == 0 || c->key.size() % ks != 0) CheckLen(c->key.size(), ks, "Each key", m, op);
          uint32_t n = static_cast<uint32_t>(c->key.size() / ks);
          CheckLen(c->value.size(), static_cast<size_t>(n) * vs, "Values", m, op);
          if (n == 0) return;
          // The kernel's batch update takes no BPF_NOEXIST / BPF_EXIST (only BPF_F_LOCK): those
          // modes go entry by entry.
          bool perEntryFlags = (c->flags & ~static_cast<uint64_t>(BPF_F_LOCK)) != 0;
          if (perEntryFlags && c->method == "batch") {
            throw NlError(EINVAL, op, "Batched updates take no create/replace mode; use method \"auto\" or \"iterate\"");
          }
          if (c->method != "iterate" && !perEntryFlags) {
            uint32_t done = 0;
            while (done < n) {
              uint32_t count = n - done;
              LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = c->flags);
              int ret = bpf_map_update_batch(m.fd, c->key.data() + static_cast<size_t>(done) * ks,
                                             c->value.data() + static_cast<size_t>(done) * vs, &count, &bo);
              if (ret == 0) {
                done += count;
                continue;
              }
              if (done == 0 && count == 0 && NoBatchSupport(-ret) && c->method == "auto") break;  // per entry below
              NlError e = BpfError(ret, op, "Batched update of " + m.label + " failed at entry " + std::to_string(done + count) + " of " + std::to_string(n));
              e.index = static_cast<int>(done + count);
              throw e;
            }
            if (done == n) {
              out->count = n;
              out->method = "batch";
              return;
            }
          }
          for (uint32_t i = 0; i < n; i++) {
            int ret = bpf_map_update_elem(m.fd, c->key.data() + static_cast<size_t>(i) * ks,
                                          c->value.data() + static_cast<size_t>(i) * vs, c->flags);
            if (ret < 0) {
              NlError e = BpfError(ret, op, "Update of " + m.label + " failed at entry " + std::to_string(i) + " of " + std::to_string(n));
              e.index = static_cast<int>(i);
              throw e;
            }
          }
          out->count = n;
          out->method = "iterate";
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("count", out->count);
          o.Set("method", out->method);
          return o;
        });
  });
}

// deleteBatch(map, keys, {method}) -> {count (deleted), method}. Keys that do not exist are
// skipped, so deleting is idempotent.
Napi::Value MapDeleteBatchJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.deleteBatch";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    c->key = BufferArg(info, 1, op, "keys");
    if (info.Length() > 2 && info[2].IsObject()) c->method = GetString(info[2].As<Napi::Object>(), "method", op, false, "auto");
    auto out = std::make_shared<BatchOut>();
    return RunAsync(
        info.Env(),
        [c, op, out]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          uint32_t ks = m.info.key_size;
          if (ks == 0 || c->key.size() % ks != 0) CheckLen(c->key.size(), ks, "Each key", m, op);
          uint32_t n = static_cast<uint32_t>(c->key.size() / ks);
          uint32_t pos = 0, deleted = 0;
          bool batch = c->method != "iterate";
          out->method = batch ? "batch" : "iterate";
          while (batch && pos < n) {
            uint32_t count = n - pos;
            LIBBPF_OPTS(bpf_map_batch_opts, bo);
            int ret = bpf_map_delete_batch(m.fd, c->key.data() + static_cast<size_t>(pos) * ks, &count, &bo);
            if (ret == 0) {
              pos += count;
              deleted += count;
              break;
            }
            if (ret == -ENOENT) {  // entries before `count` went; the one at `count` was absent
              pos += count + 1;
              deleted += count;
              continue;
            }
            if (pos == 0 && count == 0 && NoBatchSupport(-ret) && c->method == "auto") {
              batch = false;
              out->method = "iterate";
              break;
            }
            throw BpfError(ret, op, "Batched delete from " + m.label + " failed at entry " + std::to_string(pos + count));
          }
          for (; !batch && pos < n; pos++) {
            int ret = bpf_map_delete_elem(m.fd, c->key.data() + static_cast<size_t>(pos) * ks);
            if (ret == -ENOENT) continue;
            if (ret < 0) throw BpfError(ret, op, "Delete from " + m.label + " failed at entry " + std::to_string(pos));
            deleted++;
          }
          out->count = deleted;
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("count", out->count);
          o.Set("method", out->method);
          return o;
        });
  });
}

struct DumpOut {
  std::vector<uint8_t> keys, values;
  uint32_t count = 0;
  std::string method;
};

// dump(map, {method, chunk}) -> {keys, values, count, method}: every entry, through
// BPF_MAP_LOOKUP_BATCH in chunks where the map type has it, else get_next_key + lookup. For
// array maps every index is an entry.
Napi::Value MapDumpJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.map.dump";
    auto c = std::make_shared<MapCall>();
    c->ref = GetMapRef(info[0], op);
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      c->method = GetString(o, "method", op, false, "auto");
      c->chunk = GetU32(o, "chunk", op, false, 0);
    }
    auto out = std::make_shared<DumpOut>();
    return RunAsync(
        info.Env(),
        [c, op, out]() {
          OpenMap m;
          OpenMapRef(c->ref, op, &m);
          uint32_t ks = m.info.key_size, vs = m.ValueBytes();
          bool batch = c->method != "iterate";
          if (batch) {
            uint32_t chunk = c->chunk ? c->chunk : 4096;
            std::vector<uint8_t> token(std::max<uint32_t>(ks, 8)), next(token.size());
            bool first = true;
            for (;;) {
              uint32_t count = chunk;
              size_t base = out->count;
              out->keys.resize((base + chunk) * ks);
              out->values.resize((base + chunk) * vs);
              LIBBPF_OPTS(bpf_map_batch_opts, bo);
              int ret = bpf_map_lookup_batch(m.fd, first ? nullptr : token.data(), next.data(), out->keys.data() + base * ks,
                                             out->values.data() + base * vs, &count, &bo);
              if (ret == -ENOSPC && count == 0) {  // a hash bucket holds more entries than one chunk
                chunk *= 2;
                continue;
              }
              if (ret < 0 && ret != -ENOENT) {
                if (first && NoBatchSupport(-ret) && c->method == "auto") {
                  batch = false;
                  break;
                }
                throw BpfError(ret, op, "Batched lookup in " + m.label + " failed");
              }
              out->count += count;
              first = false;
              token.swap(next);
              if (ret == -ENOENT) break;
            }
            if (batch) out->method = "batch";
          }
          if (!batch) {
            out->method = "iterate";
            out->count = 0;
            std::vector<uint8_t> key(ks), nextKey(ks), value(vs);
            bool first = true;
            for (;;) {
              int ret = bpf_map_get_next_key(m.fd, first ? nullptr : key.data(), nextKey.data());
              if (ret == -ENOENT) break;
              if (ret < 0) throw BpfError(ret, op, "Iterating " + m.label + " failed");
              first = false;
              key = nextKey;
              ret = bpf_map_lookup_elem(m.fd, key.data(), value.data());
              if (ret == -ENOENT) continue;  // deleted while we iterate
              if (ret < 0) throw BpfError(ret, op, "Lookup in " + m.label + " failed while iterating");
              out->keys.resize((out->count + 1) * ks);
              out->values.resize((out->count + 1) * vs);
              std::memcpy(out->keys.data() + out->count * ks, key.data(), ks);
              std::memcpy(out->values.data() + out->count * vs, value.data(), vs);
              out->count++;
            }
          }
          out->keys.resize(static_cast<size_t>(out->count) * ks);
          out->values.resize(static_cast<size_t>(out->count) * vs);
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, out->keys.data(), out->keys.size()));
          o.Set("values", Napi::Buffer<uint8_t>::Copy(env, out->values.data(), out->values.size()));
          o.Set("count", out->count);
          o.Set("method", out->method);
          return o;
        });
  });
}

// ---------------------------------------------------------------------------------------------
// BPF_PROG_TEST_RUN

struct TestRunC {
  int progFd = -1;
  std::vector<uint8_t> data;
  __sk_buff ctx{};
  uint32_t repeat = 1;
  std::string netns;
  // out
  std::vector<uint8_t> dataOut;
  uint32_t retval = 0;
  uint32_t duration = 0;
};

// testRun(progFd, data, {ctx: {mark, ifindex, ingressIfindex, priority}, repeat, netns}) ->
// {retval, dataOut, mark, durationNs}. ifindex / ingressIfindex name devices in `netns` (or the
// caller's namespace): the kernel resolves them when it builds the test skb.
Napi::Value TestRunJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.testRun";
    auto c = std::make_shared<TestRunC>();
    if (info.Length() < 2 || !info[0].IsNumber()) throw InvalidArg(op, "Expected (progFd: number, data: Buffer, options?)");
    c->progFd = info[0].As<Napi::Number>().Int32Value();
    c->data = BufferArg(info, 1, op, "data");
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      c->repeat = GetU32(o, "repeat", op, false, 1);
      c->netns = GetString(o, "netns", op, false, "");
      if (Has(o, "ctx")) {
        Napi::Object x = GetObject(o, "ctx", op);
        c->ctx.mark = GetU32(x, "mark", op);
        c->ctx.ifindex = GetU32(x, "ifindex", op);
        c->ctx.ingress_ifindex = GetU32(x, "ingressIfindex", op);
        c->ctx.priority = GetU32(x, "priority", op);
      }
    }
    return RunAsync(
        info.Env(),
        [c, op]() {
          // Room for programs that grow the packet (encapsulation, header pushes).
          c->dataOut.assign(c->data.size() + 512, 0);
          __sk_buff ctxOut{};
          LIBBPF_OPTS(bpf_test_run_opts, to, .data_in = c->data.data(), .data_out = c->dataOut.data(),
                      .data_size_in = static_cast<uint32_t>(c->data.size()),
                      .data_size_out = static_cast<uint32_t>(c->dataOut.size()), .ctx_in = &c->ctx,
                      .ctx_out = &ctxOut, .ctx_size_in = sizeof(c->ctx), .ctx_size_out = sizeof(ctxOut),
                      .repeat = static_cast<int>(c->repeat));
          int ret = 0;
          WithNetns(c->netns, [&]() { ret = bpf_prog_test_run_opts(c->progFd, &to); });
          if (ret < 0) throw BpfError(ret, op, "BPF_PROG_TEST_RUN of program fd " + std::to_string(c->progFd) + " failed");
          c->dataOut.resize(to.data_size_out);
          c->retval = to.retval;
          c->duration = to.duration;
          c->ctx = ctxOut;
        },
        [c](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("retval", Napi::Number::New(env, static_cast<int32_t>(c->retval)));
          o.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, c->dataOut.data(), c->dataOut.size()));
          o.Set("mark", c->ctx.mark);
          o.Set("durationNs", c->duration);
          return o;
        });
  });
}

// ---------------------------------------------------------------------------------------------
// BTF

// btfStructLayout(objectPath, structName) -> {size, members: [{name, offset, size, bitOffset,
// bitSize}]} from the BTF clang emitted into the object: the ground truth for the TS mirror.
Napi::Value BtfStructLayoutJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.btfStructLayout";
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
      throw InvalidArg(op, "Expected (objectPath: string, structName: string)");
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    std::string name = info[1].As<Napi::String>().Utf8Value();
    CaptureLibbpf cap;
    btf* b = btf__parse_elf(path.c_str(), nullptr);
    if (!b) throw BpfError(-errno, op, "Cannot read BTF of \"" + path + "\"");
    std::unique_ptr<btf, void (*)(btf*)> guard(b, btf__free);
    int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) throw NlError(ENOENT, op, "Struct \"" + name + "\" is not in the BTF of \"" + path + "\"");
    const btf_type* t = btf__type_by_id(b, id);
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("size", t->size);
    const btf_member* mem = btf_members(t);
    Napi::Array members = Napi::Array::New(env, btf_vlen(t));
    for (int i = 0; i < btf_vlen(t); i++, mem++) {
      Napi::Object mo = Napi::Object::New(env);
      uint32_t bitOff = btf_member_bit_offset(t, i);
      mo.Set("name", btf__name_by_offset(b, mem->name_off));
      mo.Set("offset", bitOff / 8);
      mo.Set("bitOffset", bitOff);
      mo.Set("bitSize", btf_member_bitfield_size(t, i));
      long long size = btf__resolve_size(b, mem->type);
      mo.Set("size", Napi::Number::New(env, static_cast<double>(size)));
      members.Set(i, mo);
    }
    out.Set("members", members);
    return out;
  });
}

Napi::Value PossibleCpusJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), PossibleCpus()); }

Napi::Value EnsureBpffsJs(const Napi::CallbackInfo& info) {
  return RejectOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw InvalidArg("bpf.ensureBpffs", "Expected (dir: string)");
    std::string dir = info[0].As<Napi::String>().Utf8Value();
    return RunAsync(info.Env(), [dir]() { EnsureBpffsDir(dir, "bpf.ensureBpffs"); });
  });
}

}  // namespace

NlError BpfError(int ret, const std::string& op, const std::string& what) {
  int e = ret < 0 ? -ret : ret;
  if (e >= __LIBBPF_ERRNO__START && e < __LIBBPF_ERRNO__END) {
    char buf[128] = {0};
    libbpf_strerror(e, buf, sizeof(buf));
    int mapped = (e == LIBBPF_ERRNO__LIBELF || e == LIBBPF_ERRNO__FORMAT || e == LIBBPF_ERRNO__ENDIAN ||
                  e == LIBBPF_ERRNO__RELOC || e == LIBBPF_ERRNO__INTERNAL)
                     ? ENOEXEC
                     : EINVAL;
    return NlError(mapped, op, what + " (libbpf: " + buf + ")");
  }
  if (e == 0) e = EIO;
  // The kernel's internal ENOTSUPP (524) reaches userspace for operations a map type lacks; it
  // has no name in libc, so it crosses as EOPNOTSUPP.
  if (e == kENOTSUPP) return NlError(EOPNOTSUPP, op, what + ": the map type does not support this operation");
  return NlError(e, op, what + ": " + strerror(e));
}

void EnsureBpffsDir(const std::string& dir, const std::string& op) {
  if (dir.empty() || dir[0] != '/') throw InvalidArg(op, "Pin directory must be an absolute path, got \"" + dir + "\"");
  struct statfs fs {};
  if (statfs("/sys/fs/bpf", &fs) == 0 && static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) {
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0) {
      int e = errno;
      throw NlError(e, op, std::string("Cannot mount bpffs at \"/sys/fs/bpf\": ") + strerror(e) +
                               "; run as root or mount it (mount -t bpf bpf /sys/fs/bpf)");
    }
  }
  // mkdir -p
  for (size_t pos = 1; pos <= dir.size(); pos++) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      int e = errno;
      throw NlError(e, op, "Cannot create pin directory \"" + part + "\": " + strerror(e));
    }
  }
  if (statfs(dir.c_str(), &fs) != 0 || static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) {
    throw NlError(EINVAL, op, "Pin directory \"" + dir + "\" is not on a bpf filesystem; choose one under \"/sys/fs/bpf\"");
  }
}

void RegisterBpf(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(LibbpfPrint);
  Export(env, exports, "bpfLoad", LoadJs);
  Export(env, exports, "bpfClose", CloseJs);
  Export(env, exports, "bpfMapInfo", MapInfoJs);
  Export(env, exports, "bpfMapLookup", MapLookupJs);
  Export(env, exports, "bpfMapUpdate", MapUpdateJs);
  Export(env, exports, "bpfMapDelete", MapDeleteJs);
  Export(env, exports, "bpfMapUpdateBatch", MapUpdateBatchJs);
  Export(env, exports, "bpfMapDeleteBatch", MapDeleteBatchJs);
  Export(env, exports, "bpfMapDump", MapDumpJs);
  Export(env, exports, "bpfTestRun", TestRunJs);
  Export(env, exports, "bpfBtfStructLayout", BtfStructLayoutJs);
  Export(env, exports, "bpfPossibleCpus", PossibleCpusJs);
  Export(env, exports, "bpfEnsureBpffs", EnsureBpffsJs);
}

}  // namespace veil
