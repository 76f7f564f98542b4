// Ring-buffer readers: each consumes one BPF ring buffer on its own thread and hands records to a
// JS callback through a ThreadSafeFunction. close() (or the env cleanup hook, or garbage
// collection of the handle) wakes the thread through an eventfd, joins it and frees everything.
//
// Bounded: at most kMaxQueuedBatches batches (one per wakeup, at most the ring's size each) wait
// for the JS thread. When it falls behind (a drop storm), further batches are discarded and
// counted (ringbufLost), so the reader keeps draining the ring and memory stays bounded.
#include <bpf/libbpf.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "bpf.h"
#include "js.h"

namespace veil {

namespace {

using Batch = std::vector<std::vector<uint8_t>>;

constexpr size_t kMaxQueuedBatches = 16;

class RingReader {
 public:
  RingReader(Napi::Env env, int mapFd, Napi::Function callback) : env_(env) {
    const std::string op = "bpf.ringbuf.open";
    rb_ = ring_buffer__new(mapFd, &RingReader::OnSample, this, nullptr);
    if (!rb_) throw BpfError(-errno, op, "Cannot open ring buffer fd " + std::to_string(mapFd));
    efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (efd_ < 0 || epfd_ < 0) {
      int e = errno;
      Free();
      throw NlError(e, op, std::string("Cannot create the reader's wakeup descriptors: ") + strerror(e));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = 0;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, ring_buffer__epoll_fd(rb_), &ev);
    ev.data.u32 = 1;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, efd_, &ev);
    tsfn_ = Napi::ThreadSafeFunction::New(env, callback, "veil.ringbuf", kMaxQueuedBatches, 1);
    napi_add_env_cleanup_hook(env, &RingReader::Cleanup, this);
    thread_ = std::thread([this]() { Run(); });
  }

  ~RingReader() { Close(); }

  // Stops the thread and releases everything; idempotent. Main thread only.
  void Close() {
    if (closed_) return;
    closed_ = true;
    stop_.store(true);
    uint64_t one = 1;
    if (write(efd_, &one, sizeof(one)) < 0) {
      // The eventfd cannot be full (one write per reader); nothing else to do.
    }
    if (thread_.joinable()) thread_.join();
    tsfn_.Release();
    napi_remove_env_cleanup_hook(env_, &RingReader::Cleanup, this);
    Free();
  }

  uint64_t lost() const { return lost_.load(); }

 private:
  static void Cleanup(void* arg) { static_cast<RingReader*>(arg)->Close(); }

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingReader*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    self->batch_.emplace_back(p, p + size);
    return 0;
  }

  void Run() {
    epoll_event events[2];
    while (!stop_.load()) {
      int n = epoll_wait(epfd_, events, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || stop_.load()) break;
      ring_buffer__consume(rb_);
      if (batch_.empty()) continue;
      auto* out = new Batch(std::move(batch_));
      batch_.clear();
      napi_status st = tsfn_.NonBlockingCall(out, [](Napi::Env env, Napi::Function cb, Batch* b) {
        std::unique_ptr<Batch> own(b);
        if (!env || !cb) return;
        for (auto& rec : *own) cb.Call({Napi::Buffer<uint8_t>::Copy(env, rec.data(), rec.size())});
      });
      if (st != napi_ok) {
        lost_ += out->size();
        delete out;
      }
    }
  }

  void Free() {
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    if (efd_ >= 0) close(efd_);
    if (epfd_ >= 0) close(epfd_);
    efd_ = epfd_ = -1;
  }

  Napi::Env env_;
  ring_buffer* rb_ = nullptr;
  int efd_ = -1, epfd_ = -1;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> lost_{0};
  bool closed_ = false;
  Batch batch_;  // reader thread only
};

// ringbufOpen(mapFd, callback(record: Buffer)) -> handle
Napi::Value OpenJs(const Napi::CallbackInfo& info) {
  return ThrowOnError(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const std::string op = "bpf.ringbuf.open";
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      throw InvalidArg(op, "Expected (mapFd: number, callback: function)");
    }
    auto* r = new RingReader(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Function>());
    return Napi::External<RingReader>::New(info.Env(), r, [](Napi::Env, RingReader* p) { delete p; });
  });
}

// ringbufLost(handle) -> number: records discarded so far because the JS thread was behind.
Napi::Value LostJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "bpfRingbufLost: expected a reader handle");
  }
  RingReader* r = info[0].As<Napi::External<RingReader>>().Data();
  return Napi::Number::New(info.Env(), static_cast<double>(r->lost()));
}

// ringbufClose(handle) -> {lost}: records that could not be delivered (queue full, or closing).
Napi::Value CloseJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "bpfRingbufClose: expected a reader handle");
  }
  RingReader* r = info[0].As<Napi::External<RingReader>>().Data();
  r->Close();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("lost", Napi::Number::New(info.Env(), static_cast<double>(r->lost())));
  return o;
}

}  // namespace

void RegisterBpfRingbuf(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "bpfRingbufOpen", OpenJs);
  Export(env, exports, "bpfRingbufClose", CloseJs);
  Export(env, exports, "bpfRingbufLost", LostJs);
}

}  // namespace veil
