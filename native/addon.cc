// Module init and the JS face of the tracer: the only file that includes napi.h.
#include <napi.h>

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>

#include <time.h>

#include <cstring>
#include <functional>
#include <memory>

#ifndef TRACEDUMP_UNSUPPORTED_PLATFORM
#include <malloc.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <net/if.h>

#include "bpf.h"
#include "capture.h"
#include "capture_rules.h"
#include "event_json.h"
#include "filter_keys.h"
#include "seccomp.h"
#include "sock_diag.h"
#include "stop_stats.h"
#include "tracer.h"
#include "users.h"
#include "file_guard.h"
#include "pcap_filter.h"
#include "fast_path.h"
#endif

namespace {

struct AddonData {
  Napi::FunctionReference tracer_class;
  Napi::FunctionReference capture_class;
};

#ifndef TRACEDUMP_UNSUPPORTED_PLATFORM

Napi::Error make_error(Napi::Env env, const std::string& message, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, message + (err ? std::string(": ") + strerror(err) : ""));
  if (syscall) e.Set("syscall", Napi::String::New(env, syscall));
  if (err) {
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("code", Napi::String::New(env, errno_name(err)));
  }
  return e;
}

// A string or a Buffer, as bytes: argv, environment and paths reach the command byte for byte
// (a Buffer need not be UTF-8).
std::string bytes_of(const Napi::Value& v, const char* what) {
  if (v.IsBuffer()) {
    Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string or a Buffer");
}

std::vector<std::string> bytes_array(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings or Buffers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(bytes_of(a.Get(i), what));
  return out;
}

// A running tracer as JS sees it: pid, signal(), and events through the callback.
class TracerHandle : public Napi::ObjectWrap<TracerHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tracer",
                       {InstanceAccessor<&TracerHandle::Pid>("pid"),
                        InstanceMethod<&TracerHandle::Signal>("signal"),
                        InstanceMethod<&TracerHandle::Poll>("poll"),
                        InstanceMethod<&TracerHandle::Detach>("detach"),
                        InstanceMethod<&TracerHandle::Sweep>("sweep"),
                        InstanceMethod<&TracerHandle::StopAtSendExits>("stopAtSendExits")});
  }
  explicit TracerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TracerHandle>(info) {}

  // start(tracer, error) launches or attaches; returns the pid, or -1 with *error filled.
  using Starter = std::function<pid_t(Tracer&, TracerError*)>;
  void Start(Napi::Env env, const Starter& start, Napi::Function on_events,
             std::shared_ptr<SocketHook> hook, bool socket_events_polled) {
    // The TSFN's finalizer owns the tracer's thread: it runs once the last batch was delivered.
    auto state = std::make_shared<Shared>();
    state->tsfn = Napi::ThreadSafeFunction::New(
        env, on_events, "tracedump.tracer", 0, 1, [state](Napi::Env) {
          if (!state->tracer) return;
          // Torn down while the tracer still runs (process.exit): the detached thread keeps
          // using the tracer until the process ends, so it must never be freed.
          if (!state->tracer->finished()) new std::shared_ptr<Tracer>(state->tracer);
          state->tracer->release_thread();
        });
    std::weak_ptr<Shared> weak = state;
    state->queue = std::make_shared<EventQueue>([weak] {
      if (auto s = weak.lock()) s->tsfn.NonBlockingCall(s.get(), Deliver);
    });
    state->tracer = std::make_shared<Tracer>(state->queue, std::move(hook));
    state->tracer->set_socket_events_polled(socket_events_polled);
    TracerError err;
    on_events_ = Napi::Persistent(on_events);
    pid_ = start(*state->tracer, &err);
    if (pid_ < 0) {
      state->tsfn.Release();
      Napi::Error e = make_error(env, err.message, err.syscall.c_str(), err.err);
      if (err.pid) e.Set("pid", Napi::Number::New(env, err.pid));
      throw e;
    }
    shared_ = state;
  }

 private:
  struct Shared {
    Napi::ThreadSafeFunction tsfn;
    std::shared_ptr<EventQueue> queue;
    std::shared_ptr<Tracer> tracer;
    bool released = false;
  };

  // poll(): delivers what the tracer has queued now, synchronously (the controller then
  // knows every event emitted before the call is applied).
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    if (shared_ && !on_events_.IsEmpty()) Deliver(info.Env(), on_events_.Value(), shared_.get());
    return info.Env().Undefined();
  }

  static void Deliver(Napi::Env env, Napi::Function on_events, Shared* s) {
    if (!env || s->released) return;
    std::vector<TraceEvent> batch = s->queue->drain();
    if (batch.empty()) return;
    merge_pending_events(&batch);
    bool done = false;
    for (const TraceEvent& e : batch) done = done || e.kind == EventKind::kDone;
    std::string json;
    bool ascii = append_events_json(batch, &json);
    if (done) {
      s->released = true;
      s->tsfn.Release();
    }
    napi_value text;
    napi_status st = ascii ? napi_create_string_latin1(env, json.data(), json.size(), &text)
                           : napi_create_string_utf8(env, json.data(), json.size(), &text);
    NAPI_THROW_IF_FAILED(env, st, );
    on_events.Call({Napi::Value(env, text)});
  }

  Napi::Value Pid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pid_); }

  Napi::Value Signal(const Napi::CallbackInfo& info) {
    int sig = info[0].As<Napi::Number>().Int32Value();
    int r = shared_ ? shared_->tracer->signal_root(sig) : -ESRCH;
    return Napi::Number::New(info.Env(), r);
  }

  // Attach mode: detach from every tracee; the 'done' event follows.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    if (shared_) shared_->tracer->request_detach();
    return info.Env().Undefined();
  }

  // Search the traced fd tables for sockets no traced call showed (kFound events follow).
  Napi::Value Sweep(const Napi::CallbackInfo& info) {
    if (shared_) shared_->tracer->request_sweep();
    return info.Env().Undefined();
  }

  // Send calls on the socket with this inode take an exit stop from now on.
  Napi::Value StopAtSendExits(const Napi::CallbackInfo& info) {
    if (shared_) shared_->tracer->stop_at_send_exits(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  }

  pid_t pid_ = -1;
  std::shared_ptr<Shared> shared_;
  Napi::FunctionReference on_events_;
};

std::vector<sock_filter> classic_program(Napi::Value v) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), "a classic BPF program must be a Buffer");
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  std::vector<sock_filter> prog(b.Length() / sizeof(sock_filter));
  memcpy(prog.data(), b.Data(), prog.size() * sizeof(sock_filter));
  return prog;
}

// The kernel filter's rule maps and the stop-path hook that fills them.
class RuleSetHandle : public Napi::ObjectWrap<RuleSetHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RuleSet",
                       {InstanceMethod<&RuleSetHandle::MapFds>("mapFds"),
                        InstanceMethod<&RuleSetHandle::Release>("release"),
                        InstanceMethod<&RuleSetHandle::ExpirePending>("expirePending"),
                        InstanceMethod<&RuleSetHandle::Add>("add"),
                        InstanceMethod<&RuleSetHandle::Failed>("failed"),
                        InstanceMethod<&RuleSetHandle::OfferClassic>("offerClassic"),
                        InstanceMethod<&RuleSetHandle::Generation>("generation"),
                        InstanceMethod<&RuleSetHandle::ClassicSwaps>("classicSwaps"),
                        InstanceMethod<&RuleSetHandle::Count>("count")});
  }
  // new RuleSet(maxEntries) for the eBPF filter, or new RuleSet({capture, wide}) for the
  // classic fallback (wide: the program swapped in whenever a rule is added).
  explicit RuleSetHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RuleSetHandle>(info) {
    Napi::Env env = info.Env();
    if (info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      std::shared_ptr<Capture> capture = capture_of(o.Get("capture"));
      if (!capture) throw Napi::TypeError::New(env, "RuleSet({capture, wide}): capture must be a Capture");
      auto sw = std::make_shared<ClassicSwitch>(capture, classic_program(o.Get("wide")));
      rules = std::make_shared<CaptureRules>(sw);
      return;
    }
    uint32_t max = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 65536;
    int flows = bpf::create_hash_map(sizeof(FlowKey), 4, max, "td_flows");
    if (flows < 0) throw make_error(env, "cannot create the eBPF flow map", "bpf(BPF_MAP_CREATE)", -flows);
    int binds = bpf::create_hash_map(sizeof(EndpointKey), 4, max, "td_binds");
    int pending = bpf::create_hash_map(sizeof(EndpointKey), 4, max, "td_pending");
    if (binds < 0 || pending < 0) {
      close(flows);
      if (binds >= 0) close(binds);
      if (pending >= 0) close(pending);
      throw make_error(env, "cannot create the eBPF maps", "bpf(BPF_MAP_CREATE)", binds < 0 ? -binds : -pending);
    }
    fds_[0] = flows;
    fds_[1] = binds;
    fds_[2] = pending;
    rules = std::make_shared<CaptureRules>(flows, binds, pending);
  }
  std::shared_ptr<CaptureRules> rules;

 private:
  static std::shared_ptr<Capture> (*capture_of)(Napi::Value);

  Napi::Value OfferClassic(const Napi::CallbackInfo& info) {
    int r = rules->offer_classic(classic_program(info[0]), static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()));
    if (r < 0) throw make_error(info.Env(), "cannot attach the classic filter", "setsockopt(SO_ATTACH_FILTER)", -r);
    return Napi::Boolean::New(info.Env(), r == 1);
  }
  Napi::Value Generation(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(rules->generation()));
  }
  Napi::Value ClassicSwaps(const Napi::CallbackInfo& info) {
    ClassicSwitch* c = rules->classic();
    return Napi::Number::New(info.Env(), c ? static_cast<double>(c->swaps()) : 0);
  }

  Napi::Value MapFds(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("flows", fds_[0]);
    o.Set("binds", fds_[1]);
    o.Set("pending", fds_[2]);
    return o;
  }
  Napi::Value Release(const Napi::CallbackInfo& info) {
    uint64_t inode = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    return Napi::Number::New(info.Env(), rules->release(inode));
  }
  // expirePending(all?)
  Napi::Value ExpirePending(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), rules->expire_pending(info[0].ToBoolean()));
  }
  // add({proto, local, remote?, inode}): the rules of a socket known from elsewhere
  // (attach mode, tests): a flow when remote is given, else a bound local endpoint.
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    SocketInfo s;
    s.protocol = o.Get("proto").As<Napi::Number>().Int32Value();
    s.type = s.protocol == IPPROTO_TCP || s.protocol == 262 ? SOCK_STREAM : SOCK_DGRAM;
    s.inode = static_cast<uint64_t>(o.Get("inode").As<Napi::Number>().Int64Value());
    if (!parse_endpoint(o.Get("local"), &s.local))
      throw Napi::TypeError::New(env, "add(): local must be {address, port}");
    s.domain = s.local.family;
    if (o.Get("remote").IsObject() && !parse_endpoint(o.Get("remote"), &s.peer))
      throw Napi::TypeError::New(env, "add(): remote must be {address, port}");
    s.v6only = o.Get("v6only").ToBoolean();
    std::vector<RuleSpec> added;
    rules->adopt(s, &added);
    return Napi::Number::New(env, static_cast<double>(added.size()));
  }
  static bool parse_endpoint(Napi::Value v, Endpoint* e) {
    if (!v.IsObject()) return false;
    Napi::Object o = v.As<Napi::Object>();
    std::string addr = o.Get("address").ToString().Utf8Value();
    *e = Endpoint{};
    e->port = static_cast<uint16_t>(o.Get("port").ToNumber().Uint32Value());
    if (inet_pton(AF_INET, addr.c_str(), e->addr) == 1) {
      e->family = AF_INET;
      return true;
    }
    if (inet_pton(AF_INET6, addr.c_str(), e->addr) == 1) {
      e->family = AF_INET6;
      return true;
    }
    return false;
  }
  Napi::Value Failed(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(rules->failed()));
  }
  Napi::Value Count(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(rules->rule_count()));
  }
  int fds_[3] = {-1, -1, -1};
};

// new FileGuard(fd, removeOnDeath?: string[]) -> {writing(size), written(size), release()}:
// see file_guard.h.
class FileGuardHandle : public Napi::ObjectWrap<FileGuardHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FileGuard",
                       {InstanceMethod<&FileGuardHandle::Writing>("writing"),
                        InstanceMethod<&FileGuardHandle::Written>("written"),
                        InstanceMethod<&FileGuardHandle::Keep>("keep"),
                        InstanceMethod<&FileGuardHandle::Release>("release")});
  }
  explicit FileGuardHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileGuardHandle>(info) {
    int err = 0;
    std::vector<std::string> remove;
    if (info.Length() > 1 && info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) remove.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
    guard_ = FileGuard::start(info[0].As<Napi::Number>().Int32Value(), remove, &err);
    if (!guard_) throw make_error(info.Env(), "cannot start the file's guardian", "fork", err);
  }

 private:
  static uint64_t size_arg(const Napi::CallbackInfo& info) {
    return static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  }
  Napi::Value Writing(const Napi::CallbackInfo& info) {
    if (guard_) guard_->writing(size_arg(info));
    return info.Env().Undefined();
  }
  Napi::Value Written(const Napi::CallbackInfo& info) {
    if (guard_) guard_->written(size_arg(info));
    return info.Env().Undefined();
  }
  Napi::Value Keep(const Napi::CallbackInfo& info) {
    if (guard_) guard_->keep();
    return info.Env().Undefined();
  }
  Napi::Value Release(const Napi::CallbackInfo& info) {
    guard_.reset();
    return info.Env().Undefined();
  }
  std::unique_ptr<FileGuard> guard_;
};

// new NativePath('pcap' | 'pcapng'): see fast_path.h. run() takes its limits and returns its
// figures through typed arrays the caller keeps (no object made per call).
class NativePathHandle : public Napi::ObjectWrap<NativePathHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativePath",
                       {InstanceMethod<&NativePathHandle::Remember>("remember"),
                        InstanceMethod<&NativePathHandle::Forget>("forget"),
                        InstanceMethod<&NativePathHandle::ForgetAll>("forgetAll"),
                        InstanceMethod<&NativePathHandle::Known>("known"),
                        InstanceMethod<&NativePathHandle::SetInterface>("setInterface"),
                        InstanceMethod<&NativePathHandle::ForgetInterfaces>("forgetInterfaces"),
                        InstanceMethod<&NativePathHandle::Run>("run")});
  }
  explicit NativePathHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePathHandle>(info) {
    std::string f = info[0].As<Napi::String>().Utf8Value();
    if (f != "pcap" && f != "pcapng") throw Napi::TypeError::New(info.Env(), "NativePath: format must be pcap or pcapng");
    path_ = std::make_unique<FastPath>(f == "pcap" ? RecordFormat::kPcap : RecordFormat::kPcapng);
  }

 private:
  // An address as the controller keys it: raw bytes in a latin1 string (4 or 16).
  static void address(const Napi::Value& v, uint8_t* out) {
    char buf[17];
    size_t n = 0;
    if (napi_get_value_string_latin1(v.Env(), v, buf, sizeof buf, &n) != napi_ok || (n != 4 && n != 16))
      throw Napi::TypeError::New(v.Env(), "NativePath: an address is 4 or 16 latin1 characters");
    memcpy(out, buf, n);
  }
  // (family, src, sport, dst, dport): the first five arguments of remember and forget
  static DirectionKey direction(const Napi::CallbackInfo& info) {
    DirectionKey k;
    k.family = static_cast<uint8_t>(info[0].As<Napi::Number>().Uint32Value());
    address(info[1], k.src);
    k.sport = static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value());
    address(info[3], k.dst);
    k.dport = static_cast<uint16_t>(info[4].As<Napi::Number>().Uint32Value());
    return k;
  }
  Napi::Value Forget(const Napi::CallbackInfo& info) {
    path_->forget(direction(info));
    return info.Env().Undefined();
  }
  // remember(family, src, sport, dst, dport, since, until, options, sentOnLoopback, slot?)
  Napi::Value Remember(const Napi::CallbackInfo& info) {
    DirectionKey k = direction(info);
    KnownDirection v;
    v.since = info[5].As<Napi::Number>().DoubleValue();
    v.until = info[6].As<Napi::Number>().DoubleValue();
    auto opts = info[7].As<Napi::Buffer<uint8_t>>();
    v.options.assign(reinterpret_cast<const char*>(opts.Data()), opts.Length());
    v.sent_on_loopback = info[8].As<Napi::Boolean>().Value();
    if (info.Length() > 9 && info[9].IsNumber()) v.slot = info[9].As<Napi::Number>().Uint32Value();
    path_->remember(k, std::move(v));
    return info.Env().Undefined();
  }
  Napi::Value ForgetAll(const Napi::CallbackInfo& info) {
    path_->forget_all();
    return info.Env().Undefined();
  }
  Napi::Value Known(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(path_->known()));
  }
  Napi::Value SetInterface(const Napi::CallbackInfo& info) {
    path_->set_interface(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value ForgetInterfaces(const Napi::CallbackInfo& info) {
    path_->forget_interfaces();
    return info.Env().Undefined();
  }
  // run(batch, at, out, outAt, limits: Float64Array(6), result: Float64Array(9), perIfid: Uint32Array(64),
  //     units?: Float64Array, marks?: Uint32Array)
  //   limits: endMs, maxRecords, outLimit, periodSec, period, tlsWatch
  //   result: next, outEnd, records, wireBytes, seen, duplicates, lastMs, stop, need
  //   units: filled with (end offset, capture ms) per record written, when given
  //   marks: filled with kMarkSize numbers per record written, when given (fast_path.h)
  Napi::Value Run(const Napi::CallbackInfo& info) {
    auto batch = info[0].As<Napi::Buffer<uint8_t>>();
    size_t at = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    auto out = info[2].As<Napi::Buffer<uint8_t>>();
    size_t out_at = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
    auto l = info[4].As<Napi::Float64Array>();
    auto res = info[5].As<Napi::Float64Array>();
    auto per_ifid = info[6].As<Napi::Uint32Array>();
    if (l.ElementLength() < 6 || res.ElementLength() < 9 || per_ifid.ElementLength() < FastPath::kMaxInterfaces ||
        at > batch.Length() || out_at > out.Length())
      throw Napi::RangeError::New(info.Env(), "NativePath.run: arguments out of range");
    RunLimits limits;
    limits.end_ms = l[0];
    limits.max_records = l[1];
    limits.out_limit = l[2] >= static_cast<double>(out.Length()) ? out.Length() : (l[2] < 0 ? 0 : static_cast<size_t>(l[2]));
    limits.period_sec = l[3];
    limits.period = l[4];
    limits.tls_watch = l[5] != 0;
    if (info.Length() > 7 && info[7].IsTypedArray()) {
      auto units = info[7].As<Napi::Float64Array>();
      limits.units = units.Data();
      limits.units_capacity = units.ElementLength() / 2;
    }
    if (info.Length() > 8 && info[8].IsTypedArray()) {
      auto marks = info[8].As<Napi::Uint32Array>();
      limits.marks = marks.Data();
      limits.marks_capacity = marks.ElementLength() / kMarkSize;
    }
    RunResult r = path_->run(batch.Data(), batch.Length(), at, out.Data(), out_at, out.Length(), limits, per_ifid.Data());
    res[0] = static_cast<double>(r.next);
    res[1] = static_cast<double>(r.out_end);
    res[2] = r.records;
    res[3] = r.wire_bytes;
    res[4] = r.seen;
    res[5] = r.duplicates;
    res[6] = r.last_ms;
    res[7] = r.stop;
    res[8] = static_cast<double>(r.need);
    return info.Env().Undefined();
  }
  std::unique_ptr<FastPath> path_;
};

// The live capture: a packet socket with its ring and reader thread.
class CaptureHandle : public Napi::ObjectWrap<CaptureHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Capture",
                       {InstanceMethod<&CaptureHandle::AttachBpf>("attachBpf"),
                        InstanceMethod<&CaptureHandle::AttachClassic>("attachClassic"),
                        InstanceMethod<&CaptureHandle::Start>("start"),
                        InstanceMethod<&CaptureHandle::Stop>("stop"),
                        InstanceMethod<&CaptureHandle::Stats>("stats"),
                        InstanceMethod<&CaptureHandle::Ring>("ring"),
                        InstanceMethod<&CaptureHandle::State>("state"),
                        InstanceMethod<&CaptureHandle::OpenGate>("openGate")});
  }
  // new Capture({blockSize, blockCount, retireMs}, onBatch(memory, offset, size, packets)): see DeliverAll
  explicit CaptureHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CaptureHandle>(info) {
    Napi::Env env = info.Env();
    CaptureOptions o;
    if (info[0].IsObject()) {
      Napi::Object opts = info[0].As<Napi::Object>();
      if (opts.Get("blockSize").IsNumber()) o.block_size = opts.Get("blockSize").As<Napi::Number>().Uint32Value();
      if (opts.Get("blockCount").IsNumber()) o.block_count = opts.Get("blockCount").As<Napi::Number>().Uint32Value();
      if (opts.Get("retireMs").IsNumber()) o.retire_ms = opts.Get("retireMs").As<Napi::Number>().Uint32Value();
      if (opts.Get("interfaces").IsArray()) {
        Napi::Array a = opts.Get("interfaces").As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); i++) o.interfaces.push_back(a.Get(i).As<Napi::Number>().Int32Value());
      }
      if (opts.Get("userFilter").IsBuffer()) o.user_filter = classic_program(opts.Get("userFilter"));
      if (opts.Get("deferRing").IsBoolean()) o.defer_ring = opts.Get("deferRing").As<Napi::Boolean>().Value();
    }
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "new Capture(options, onBatch)");
    std::string syscall_name;
    int err = 0;
    capture_ = Capture::open(o, &syscall_name, &err);
    if (!capture_) throw make_error(env, "cannot open the packet capture", syscall_name.c_str(), err);
    on_batch_ = Napi::Persistent(info[1].As<Napi::Function>());
  }
  ~CaptureHandle() override { Close(); }

 private:
  struct Shared {
    std::mutex mutex;
    std::vector<CaptureBatch> batches;
    std::weak_ptr<Capture> capture;  // slabs go back to it while it lives
  };

  void Close() {
    if (!capture_) return;
    capture_->stop();
    if (started_) tsfn_.Release();
    capture_.reset();
  }

  Napi::Value AttachBpf(const Napi::CallbackInfo& info) {
    int r = capture_->attach_bpf(info[0].As<Napi::Number>().Int32Value());
    if (r < 0) throw make_error(info.Env(), "cannot attach the eBPF filter", "setsockopt(SO_ATTACH_BPF)", -r);
    return info.Env().Undefined();
  }

  Napi::Value AttachClassic(const Napi::CallbackInfo& info) {
    std::vector<sock_filter> prog = classic_program(info[0]);
    int r = capture_->attach_classic(prog);
    if (r < 0) throw make_error(info.Env(), "cannot attach the classic filter", "setsockopt(SO_ATTACH_FILTER)", -r);
    return info.Env().Undefined();
  }

  // onBatch(memory, offset, size, packets): a batch is memory[offset, offset + size). Lent
  // blocks are given as null, meaning the ring (ring(): one Buffer made once). A Buffer made
  // per batch would add its size to V8's count of external memory each time: on a gigabyte
  // capture that count set off a full garbage collection every few dozen megabytes.
  static void DeliverAll(Napi::Env env, Napi::Function fn, Shared* s) {
    std::vector<CaptureBatch> batches;
    {
      std::lock_guard<std::mutex> lock(s->mutex);
      batches.swap(s->batches);
    }
    auto c = s->capture.lock();
    for (auto& b : batches) {
      // Borrowed memory: valid during the call only (the controller copies what it keeps).
      napi_value memory;
      size_t offset = 0;
      if (!b.slab.copied() && c) {
        memory = env.Null();
        offset = static_cast<size_t>(b.slab.get() - c->ring());
      } else {
        memory = Napi::Buffer<uint8_t>::New(env, b.slab.get(), b.size);
      }
      auto give_back = [&] {
        if (c) c->recycle(std::move(b.slab));
      };
      try {
        fn.Call({memory, Napi::Number::New(env, static_cast<double>(offset)), Napi::Number::New(env, static_cast<double>(b.size)),
                 Napi::Number::New(env, b.packets)});
      } catch (...) {
        give_back();
        throw;
      }
      give_back();
    }
  }

  // The ring as one Buffer (the memory of the batches given as null), valid while the capture is open.
  Napi::Value Ring(const Napi::CallbackInfo& info) {
    if (!capture_) throw Napi::Error::New(info.Env(), "Capture.ring(): the capture is closed");
    return Napi::Buffer<uint8_t>::New(info.Env(), capture_->ring(), capture_->ring_size());
  }

  // state() -> {live, liveCpuSeconds, error?: {syscall, errno, code}}: whether packets are
  // received (a deferred ring: once it is made), and why it never will be.
  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("live", capture_ && capture_->live());
    o.Set("liveCpuSeconds", capture_ ? capture_->live_cpu_seconds() : 0.0);
    std::string syscall_name;
    int err = capture_ ? capture_->ring_error(&syscall_name) : 0;
    if (err) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("syscall", syscall_name);
      e.Set("errno", err);
      e.Set("code", errno_name(err));
      e.Set("message", strerror(err));
      o.Set("error", e);
    }
    return o;
  }

  // openGate(): a deferred ring that is live lets the command's waiting calls go on.
  Napi::Value OpenGate(const Napi::CallbackInfo& info) {
    if (capture_) capture_->open_gate();
    return info.Env().Undefined();
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    shared_ = std::make_shared<Shared>();
    shared_->capture = capture_;
    tsfn_ = Napi::ThreadSafeFunction::New(env, on_batch_.Value(), "tracedump.capture", 0, 1);
    tsfn_.Unref(env);  // the tracer and timers keep the loop alive, not the capture
    std::weak_ptr<Shared> weak = shared_;
    Napi::ThreadSafeFunction tsfn = tsfn_;
    const char* syscall_name = "";
    int r = capture_->start([weak, tsfn](CaptureBatch&& batch) mutable {
      auto s = weak.lock();
      if (!s) return;
      bool was_empty;
      {
        std::lock_guard<std::mutex> lock(s->mutex);
        was_empty = s->batches.empty();
        s->batches.push_back(std::move(batch));
      }
      if (was_empty) tsfn.NonBlockingCall(s.get(), [](Napi::Env env, Napi::Function fn, Shared* s) {
          if (env) DeliverAll(env, fn, s);
        });
    }, &syscall_name);
    if (r < 0) {
      tsfn_.Release();
      throw make_error(env, "cannot start the packet capture", syscall_name, -r);
    }
    started_ = true;
    return env.Undefined();
  }

  // Stops the reader after the last packets in the ring, delivering them synchronously.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (capture_ && started_) {
      capture_->stop();
      DeliverAll(info.Env(), on_batch_.Value(), shared_.get());
      // The reader is gone: release the TSFN now, while the environment lives. Released
      // from the destructor instead, it could run during the environment's teardown, after
      // Node finalized the TSFN itself (an abort at exit, seen in a test that stops captures).
      tsfn_.Release();
      started_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    CaptureStats s = capture_ ? capture_->stats() : CaptureStats{};
    o.Set("packets", static_cast<double>(s.packets));
    o.Set("drops", static_cast<double>(s.drops));
    o.Set("stalls", static_cast<double>(s.stalls));
    o.Set("waiting", static_cast<double>(s.waiting));
    return o;
  }

 public:
  std::shared_ptr<Capture> capture() const { return capture_; }

 private:
  std::shared_ptr<Capture> capture_;
  Napi::FunctionReference on_batch_;
  Napi::ThreadSafeFunction tsfn_;
  std::shared_ptr<Shared> shared_;
  bool started_ = false;
};

std::shared_ptr<Capture> capture_of_value(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.InstanceOf(o.Env().GetInstanceData<struct AddonData>()->capture_class.Value())) return nullptr;
  return CaptureHandle::Unwrap(o)->capture();
}
std::shared_ptr<Capture> (*RuleSetHandle::capture_of)(Napi::Value) = capture_of_value;

// loadSocketFilter(insns: Buffer) -> fd; the error carries the verifier's log.
Napi::Value LoadSocketFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<bpf_insn> insns(b.Length() / sizeof(bpf_insn));
  memcpy(insns.data(), b.Data(), insns.size() * sizeof(bpf_insn));
  std::string log;
  int fd = bpf::load_socket_filter(insns.data(), insns.size(), &log);
  if (fd < 0) {
    Napi::Error e = make_error(env, "the kernel refused the eBPF filter", "bpf(BPF_PROG_LOAD)", -fd);
    e.Set("verifierLog", log);
    throw e;
  }
  return Napi::Number::New(env, fd);
}

// testRun(progFd, packet) -> bytes kept (0: rejected)
Napi::Value TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
  uint32_t ret = 0;
  int r = bpf::test_run(fd, b.Data(), b.Length(), &ret);
  if (r < 0) throw make_error(env, "cannot test-run the filter", "bpf(BPF_PROG_TEST_RUN)", -r);
  return Napi::Number::New(env, ret);
}

double realtime_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// liveSockets([protocols]) -> {sockets: Float64Array of (inode, protocol, local port) triples,
// listening (the inodes of TCP listeners), finishing, before, after}: all sockets of those protocols (default TCP, UDP, UDP-Lite) in this
// network namespace, and the realtime clock (ms, the packets' clock) just before and after the
// dump. finishing (with TCP): a Buffer of 40-byte records of the TCP connections still
// finishing without a socket: family (4|6) at 0, TCP state at 1, local port at 2, remote port at 4 (uint16
// LE), local address at 8, remote at 24 (4 or 16 bytes).
Napi::Value LiveSockets(const Napi::CallbackInfo& info) {
  std::vector<int> protocols = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE};
  if (info[0].IsArray()) {
    protocols.clear();
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) protocols.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  std::vector<LiveSocket> sockets;
  std::vector<FinishingFlow> finishing;
  double before = realtime_ms();
  int r = list_sockets(protocols, &sockets, &finishing);
  double after = realtime_ms();
  if (r < 0) throw make_error(info.Env(), "cannot list sockets", "sock_diag", -r);
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), sockets.size() * 3);
  for (size_t i = 0; i < sockets.size(); i++) {
    out[3 * i] = static_cast<double>(sockets[i].inode);
    out[3 * i + 1] = sockets[i].protocol;
    out[3 * i + 2] = sockets[i].port;
  }
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("sockets", out);
  size_t listening = 0;
  for (const LiveSocket& l : sockets) listening += l.listening;
  Napi::Float64Array listen = Napi::Float64Array::New(info.Env(), listening);
  for (size_t i = 0, j = 0; i < sockets.size(); i++)
    if (sockets[i].listening) listen[j++] = static_cast<double>(sockets[i].inode);
  result.Set("listening", listen);
  Napi::Buffer<uint8_t> fin = Napi::Buffer<uint8_t>::New(info.Env(), finishing.size() * 40);
  memset(fin.Data(), 0, fin.Length());
  for (size_t i = 0; i < finishing.size(); i++) {
    uint8_t* rec = fin.Data() + 40 * i;
    const FinishingFlow& f = finishing[i];
    rec[0] = f.family == AF_INET ? 4 : 6;
    rec[1] = f.state;
    memcpy(rec + 2, &f.local_port, 2);
    memcpy(rec + 4, &f.remote_port, 2);
    memcpy(rec + 8, f.local, 16);
    memcpy(rec + 24, f.remote, 16);
  }
  result.Set("finishing", fin);
  result.Set("before", before);
  result.Set("after", after);
  return result;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// socketDomain(fd) -> the address family of the socket at fd (AF_INET...), or -1 when fd is
// not an open socket.
Napi::Value SocketDomain(const Napi::CallbackInfo& info) {
  int domain = -1;
  socklen_t len = sizeof domain;
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) domain = -1;
  return Napi::Number::New(info.Env(), domain);
}

// compileFilter(expr, snaplen, linktype = LINKTYPE_RAW) -> Buffer of classic BPF; throws libpcap's
// message, or an error with code ELIBPCAP when libpcap is not installed.
Napi::Value CompileFilter(const Napi::CallbackInfo& info) {
  std::vector<sock_filter> prog;
  std::string error;
  bool missing = false;
  int linktype = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : kLinktypeRaw;
  if (!compile_pcap_filter(info[0].ToString().Utf8Value(), linktype, info[1].ToNumber().Int32Value(), &prog,
                           &error, &missing)) {
    Napi::Error e = Napi::Error::New(info.Env(), error);
    if (missing) e.Set("code", Napi::String::New(info.Env(), "ELIBPCAP"));
    throw e;
  }
  return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<uint8_t*>(prog.data()), prog.size() * sizeof(sock_filter));
}

// filterMatches(program, frame, wireLength) -> whether a program from compileFilter keeps the frame.
Napi::Value FilterMatches(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> prog = info[0].As<Napi::Buffer<uint8_t>>();
  Napi::Buffer<uint8_t> frame = info[1].As<Napi::Buffer<uint8_t>>();
  uint32_t wire = info[2].As<Napi::Number>().Uint32Value();
  if (!pcap_filter_loaded() || prog.Length() < sizeof(sock_filter) || prog.Length() % sizeof(sock_filter) != 0)
    throw Napi::TypeError::New(info.Env(), "filterMatches: not a program from compileFilter");
  return Napi::Boolean::New(info.Env(), pcap_filter_accepts(reinterpret_cast<const sock_filter*>(prog.Data()),
                                                            frame.Data(), wire, frame.Length()));
}

Napi::Value InterfaceIndex(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), if_nametoindex(info[0].ToString().Utf8Value().c_str()));
}

Napi::Value InterfaceName(const Napi::CallbackInfo& info) {
  char name[IF_NAMESIZE] = "";
  if (!if_indextoname(info[0].As<Napi::Number>().Uint32Value(), name)) return info.Env().Null();
  return Napi::String::New(info.Env(), name);
}



Napi::Value start_tracer(const Napi::CallbackInfo& info, const TracerHandle::Starter& start);

// launch({path, argv, env, cwd, stdio, keepFds?, user?, rules?, socketEventsPolled?, capture?}, onEvents) -> Tracer
// (capture: its gate holds the command's socket calls until the capture is live)
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "launch(options, onEvents) expects an object and a function");
  Napi::Object o = info[0].As<Napi::Object>();
  LaunchOptions options;
  options.path = bytes_of(o.Get("path"), "path");
  options.argv = bytes_array(o.Get("argv"), "argv");
  options.env = bytes_array(o.Get("env"), "env");
  if (o.Get("cwd").IsString()) options.cwd = o.Get("cwd").As<Napi::String>().Utf8Value();
  if (o.Get("keepFds").IsArray()) {
    Napi::Array a = o.Get("keepFds").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) options.keep_fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  if (o.Get("stdio").IsArray()) {
    Napi::Array a = o.Get("stdio").As<Napi::Array>();
    for (uint32_t i = 0; i < 3 && i < a.Length(); i++)
      options.stdio[i] = a.Get(i).As<Napi::Number>().Int32Value();
  }
  if (o.Get("user").IsObject()) {
    Napi::Object u = o.Get("user").As<Napi::Object>();
    options.set_credentials = true;
    options.uid = u.Get("uid").As<Napi::Number>().Uint32Value();
    options.gid = u.Get("gid").As<Napi::Number>().Uint32Value();
    Napi::Array groups = u.Get("groups").As<Napi::Array>();
    for (uint32_t i = 0; i < groups.Length(); i++)
      options.groups.push_back(groups.Get(i).As<Napi::Number>().Uint32Value());
  }
  if (auto capture = capture_of_value(o.Get("capture"))) options.gate = capture->gate();
  return start_tracer(info, [options](Tracer& t, TracerError* err) { return t.launch(options, err); });
}

// attach({pids, rules?, socketEventsPolled?}, onEvents) -> Tracer (pid: the first process)
Napi::Value Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction() || !info[0].As<Napi::Object>().Get("pids").IsArray())
    throw Napi::TypeError::New(env, "attach({pids}, onEvents) expects an object and a function");
  Napi::Array a = info[0].As<Napi::Object>().Get("pids").As<Napi::Array>();
  std::vector<pid_t> pids;
  for (uint32_t i = 0; i < a.Length(); i++) pids.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  return start_tracer(info, [pids](Tracer& t, TracerError* err) {
    return t.attach(pids, err) == 0 ? pids.front() : -1;
  });
}

Napi::Value start_tracer(const Napi::CallbackInfo& info, const TracerHandle::Starter& start) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  AddonData* data = env.GetInstanceData<AddonData>();
  std::shared_ptr<SocketHook> hook;
  if (o.Get("rules").IsObject()) hook = RuleSetHandle::Unwrap(o.Get("rules").As<Napi::Object>())->rules;
  Napi::Object handle = data->tracer_class.New({});
  bool polled = o.Get("socketEventsPolled").ToBoolean();
  TracerHandle::Unwrap(handle)->Start(env, start, info[1].As<Napi::Function>(), std::move(hook), polled);
  return handle;
}

// lookupUser(name | uid) -> {name, uid, gid, home, shell, groups} | null
Napi::Value LookupUser(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UserInfo u;
  int r = info[0].IsNumber() ? lookup_user_by_uid(info[0].As<Napi::Number>().Uint32Value(), &u)
                             : lookup_user_by_name(info[0].ToString().Utf8Value(), &u);
  if (r == -ENOENT) return env.Null();
  if (r < 0) throw make_error(env, "cannot look up the user", "getpwnam_r", -r);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", u.name);
  o.Set("uid", u.uid);
  o.Set("gid", u.gid);
  o.Set("home", u.home);
  o.Set("shell", u.shell);
  Napi::Array groups = Napi::Array::New(env, u.groups.size());
  for (size_t i = 0; i < u.groups.size(); i++) groups.Set(i, u.groups[i]);
  o.Set("groups", groups);
  return o;
}

// Ends the process without Node's exit path, whose terminal reset aborts when the terminal has
// hung up (nodejs/node#51519). Every file tracedump writes is written synchronously by then.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  _exit(info[0].As<Napi::Number>().Int32Value());
}

// Instrumentation (TRACEDUMP_STATS_FILE): enableStopStats(capacity) starts recording the stop
// path's timings; stopStats() -> {kind: {ns: Uint32Array, present: Uint32Array, overflow}}.
Napi::Value EnableStopStats(const Napi::CallbackInfo& info) {
  stop_stats::enable(info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1 << 16);
  return info.Env().Undefined();
}

Napi::Value StopStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* const names[stop_stats::kCount] = {
      "connectEntry", "connectExit", "otherEntry",   "otherExit",
      "mapInsert",    "mapDelete",   "classicWide", "classicExact"};
  Napi::Object o = Napi::Object::New(env);
  for (int k = 0; k < stop_stats::kCount; k++) {
    uint64_t overflow = 0;
    std::vector<stop_stats::Sample> v = stop_stats::read(static_cast<stop_stats::Kind>(k), &overflow);
    Napi::Uint32Array ns = Napi::Uint32Array::New(env, v.size());
    Napi::Uint32Array present = Napi::Uint32Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) {
      ns[i] = v[i].ns;
      present[i] = v[i].present;
    }
    Napi::Object series = Napi::Object::New(env);
    series.Set("ns", ns);
    series.Set("present", present);
    series.Set("overflow", Napi::Number::New(env, static_cast<double>(overflow)));
    o.Set(names[k], series);
  }
  return o;
}

Napi::Value SeccompProgram(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), seccomp::dump_program(seccomp::build_program()));
}

// glibc maps every allocation over 128 KiB on its own and unmaps it when freed, and gives a
// heap's free top back over 128 KiB: each reuse then faults its pages in afresh. tracedump
// allocates such blocks all the time (an event batch's JSON text, V8's compiler zones), and a
// page fault is dear in a VM (~18 µs each on the benchmarks' 2-vCPU VM). Blocks up to 4 MiB and
// 16 MiB of free top are kept: a 2,000-connect storm took 15 % less CPU (11 % less time); peak
// RSS unchanged (125 MiB for a 200 MiB capture). Only this process: the command starts from
// execve, with glibc's defaults.
void tune_malloc() {
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

#endif  // TRACEDUMP_UNSUPPORTED_PLATFORM

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef TRACEDUMP_UNSUPPORTED_PLATFORM
  exports.Set("unsupported", Napi::String::New(env, "tracedump runs on Linux x86-64 only"));
#else
  tune_malloc();
  auto* data = new AddonData();
  data->tracer_class = Napi::Persistent(TracerHandle::Define(env));
  env.SetInstanceData(data);
  exports.Set("launch", Napi::Function::New(env, Launch, "launch"));
  exports.Set("attach", Napi::Function::New(env, Attach, "attach"));
  exports.Set("FileGuard", FileGuardHandle::Define(env));
  exports.Set("NativePath", NativePathHandle::Define(env));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow, "exitNow"));
  exports.Set("lookupUser", Napi::Function::New(env, LookupUser, "lookupUser"));
  exports.Set("seccompProgram", Napi::Function::New(env, SeccompProgram, "seccompProgram"));
  exports.Set("enableStopStats", Napi::Function::New(env, EnableStopStats, "enableStopStats"));
  exports.Set("stopStats", Napi::Function::New(env, StopStats, "stopStats"));
  exports.Set("RuleSet", RuleSetHandle::Define(env));
  Napi::Function capture_class = CaptureHandle::Define(env);
  data->capture_class = Napi::Persistent(capture_class);
  exports.Set("Capture", capture_class);
  exports.Set("loadSocketFilter", Napi::Function::New(env, LoadSocketFilter, "loadSocketFilter"));
  exports.Set("testRun", Napi::Function::New(env, TestRun, "testRun"));
  exports.Set("liveSockets", Napi::Function::New(env, LiveSockets, "liveSockets"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("socketDomain", Napi::Function::New(env, SocketDomain, "socketDomain"));
  exports.Set("compileFilter", Napi::Function::New(env, CompileFilter, "compileFilter"));
  exports.Set("filterMatches", Napi::Function::New(env, FilterMatches, "filterMatches"));
  exports.Set("interfaceIndex", Napi::Function::New(env, InterfaceIndex, "interfaceIndex"));
  exports.Set("interfaceName", Napi::Function::New(env, InterfaceName, "interfaceName"));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(tracedump, Init)
