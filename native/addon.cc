// Module init and the JS face of the tracer: the only file that includes napi.h.
#include <napi.h>

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#ifndef TRACEDUMP_UNSUPPORTED_PLATFORM
#include "seccomp.h"
#include "tracer.h"
#endif

namespace {

#ifndef TRACEDUMP_UNSUPPORTED_PLATFORM

const char* errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E?";
}

Napi::Error make_error(Napi::Env env, const std::string& message, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, message + (err ? std::string(": ") + strerror(err) : ""));
  if (syscall) e.Set("syscall", Napi::String::New(env, syscall));
  if (err) {
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("code", Napi::String::New(env, errno_name(err)));
  }
  return e;
}

const char* call_name(SocketCall c) {
  switch (c) {
    case SocketCall::kConnect: return "connect";
    case SocketCall::kBind: return "bind";
    case SocketCall::kListen: return "listen";
    case SocketCall::kSendto: return "sendto";
    case SocketCall::kSendmsg: return "sendmsg";
    case SocketCall::kSendmmsg: return "sendmmsg";
  }
  return "?";
}

const char* stage_name(LaunchStage s) {
  switch (s) {
    case LaunchStage::kNone: return nullptr;
    case LaunchStage::kStdio: return "dup2";
    case LaunchStage::kChdir: return "chdir";
    case LaunchStage::kSync: return "read";
    case LaunchStage::kSeccomp: return "seccomp";
    case LaunchStage::kExec: return "execve";
  }
  return nullptr;
}

const char* proto_name(const SocketInfo& s) {
  switch (s.protocol) {
    case 6: return "tcp";
    case 262: return "mptcp";
    case 17: return "udp";
    case 136: return "udplite";
  }
  return "?";
}

Napi::Value endpoint_value(Napi::Env env, const Endpoint& e) {
  if (!e.valid()) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("address", e.address_string());
  o.Set("port", e.port);
  return o;
}

Napi::Object event_value(Napi::Env env, const TraceEvent& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("time", e.time_ms);
  o.Set("pid", e.pid);
  o.Set("tid", e.tid);
  switch (e.kind) {
    case EventKind::kSocket: {
      o.Set("kind", "socket");
      o.Set("comm", e.comm);
      if (!e.thread_name.empty()) o.Set("threadName", e.thread_name);
      o.Set("call", call_name(e.call));
      o.Set("fd", e.fd);
      o.Set("family", e.socket.domain == AF_INET6 ? 6 : 4);
      o.Set("proto", proto_name(e.socket));
      o.Set("local", endpoint_value(env, e.socket.local));
      Napi::Array remotes = Napi::Array::New(env, e.remotes.size());
      for (size_t i = 0; i < e.remotes.size(); i++) remotes.Set(i, endpoint_value(env, e.remotes[i]));
      o.Set("remotes", remotes);
      if (e.has_result) {
        o.Set("result", Napi::Number::New(env, static_cast<double>(e.result)));
        if (e.result < 0 && e.result > -4096)
          o.Set("errno", errno_name(static_cast<int>(-e.result)));
      } else {
        o.Set("result", env.Null());
      }
      break;
    }
    case EventKind::kSpawn:
      o.Set("kind", "spawn");
      o.Set("child", e.child);
      o.Set("thread", e.thread);
      o.Set("how", e.spawn_event == PTRACE_EVENT_VFORK  ? "vfork"
                   : e.spawn_event == PTRACE_EVENT_FORK ? "fork"
                                                        : "clone");
      o.Set("comm", e.comm);
      break;
    case EventKind::kExec:
      o.Set("kind", "exec");
      o.Set("formerTid", e.former_tid);
      o.Set("comm", e.comm);
      o.Set("exe", e.exe);
      break;
    case EventKind::kExit:
      o.Set("kind", "exit");
      o.Set("comm", e.comm);
      o.Set("code", e.exited ? Napi::Value(Napi::Number::New(env, e.code)) : env.Null());
      o.Set("signal", e.exited ? env.Null() : Napi::Value(Napi::Number::New(env, e.signal)));
      o.Set("core", e.core);
      if (const char* stage = stage_name(e.failed_stage)) {
        Napi::Object f = Napi::Object::New(env);
        f.Set("syscall", stage);
        f.Set("errno", e.failed_errno);
        f.Set("code", errno_name(e.failed_errno));
        f.Set("message", strerror(e.failed_errno));
        o.Set("launchFailure", f);
      }
      break;
    case EventKind::kWarning:
      o.Set("kind", "warning");
      o.Set("message", e.message);
      break;
    case EventKind::kDone:
      o.Set("kind", "done");
      break;
  }
  return o;
}

std::vector<std::string> string_array(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
    out.push_back(s.As<Napi::String>().Utf8Value());
  }
  return out;
}

// A running tracer as JS sees it: pid, signal(), and events through the callback.
class TracerHandle : public Napi::ObjectWrap<TracerHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tracer",
                       {InstanceAccessor<&TracerHandle::Pid>("pid"),
                        InstanceMethod<&TracerHandle::Signal>("signal")});
  }
  explicit TracerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TracerHandle>(info) {}

  void Start(Napi::Env env, const LaunchOptions& options, Napi::Function on_events) {
    // The TSFN's finalizer owns the tracer's thread: it runs once the last batch was delivered.
    auto state = std::make_shared<Shared>();
    state->tsfn = Napi::ThreadSafeFunction::New(
        env, on_events, "tracedump.tracer", 0, 1, [state](Napi::Env) {
          if (state->tracer) state->tracer->release_thread();
        });
    std::weak_ptr<Shared> weak = state;
    state->queue = std::make_shared<EventQueue>([weak] {
      if (auto s = weak.lock()) s->tsfn.NonBlockingCall(s.get(), Deliver);
    });
    state->tracer = std::make_shared<Tracer>(state->queue, nullptr);
    TracerError err;
    pid_ = state->tracer->launch(options, &err);
    if (pid_ < 0) {
      state->tsfn.Release();
      throw make_error(env, err.message, err.syscall.c_str(), err.err);
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

  static void Deliver(Napi::Env env, Napi::Function on_events, Shared* s) {
    if (!env || s->released) return;
    std::vector<TraceEvent> batch = s->queue->drain();
    if (batch.empty()) return;
    bool done = false;
    Napi::Array arr = Napi::Array::New(env, batch.size());
    for (size_t i = 0; i < batch.size(); i++) {
      arr.Set(i, event_value(env, batch[i]));
      done = done || batch[i].kind == EventKind::kDone;
    }
    if (done) {
      s->released = true;
      s->tsfn.Release();
    }
    on_events.Call({arr});
  }

  Napi::Value Pid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pid_); }

  Napi::Value Signal(const Napi::CallbackInfo& info) {
    int sig = info[0].As<Napi::Number>().Int32Value();
    int r = shared_ ? shared_->tracer->signal_root(sig) : -ESRCH;
    return Napi::Number::New(info.Env(), r);
  }

  pid_t pid_ = -1;
  std::shared_ptr<Shared> shared_;
};

struct AddonData {
  Napi::FunctionReference tracer_class;
};

// launch({path, argv, env, cwd, stdio}, onEvents) -> Tracer
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "launch(options, onEvents) expects an object and a function");
  Napi::Object o = info[0].As<Napi::Object>();
  LaunchOptions options;
  options.path = o.Get("path").As<Napi::String>().Utf8Value();
  options.argv = string_array(o.Get("argv"), "argv");
  options.env = string_array(o.Get("env"), "env");
  if (o.Get("cwd").IsString()) options.cwd = o.Get("cwd").As<Napi::String>().Utf8Value();
  if (o.Get("stdio").IsArray()) {
    Napi::Array a = o.Get("stdio").As<Napi::Array>();
    for (uint32_t i = 0; i < 3 && i < a.Length(); i++)
      options.stdio[i] = a.Get(i).As<Napi::Number>().Int32Value();
  }
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object handle = data->tracer_class.New({});
  TracerHandle::Unwrap(handle)->Start(env, options, info[1].As<Napi::Function>());
  return handle;
}

Napi::Value SeccompProgram(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), seccomp::dump_program(seccomp::build_program()));
}

#endif  // TRACEDUMP_UNSUPPORTED_PLATFORM

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef TRACEDUMP_UNSUPPORTED_PLATFORM
  exports.Set("unsupported", Napi::String::New(env, "tracedump runs on Linux x86-64 only"));
#else
  auto* data = new AddonData();
  data->tracer_class = Napi::Persistent(TracerHandle::Define(env));
  env.SetInstanceData(data);
  exports.Set("launch", Napi::Function::New(env, Launch, "launch"));
  exports.Set("seccompProgram", Napi::Function::New(env, SeccompProgram, "seccompProgram"));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(tracedump, Init)
