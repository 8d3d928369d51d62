// TraceEvent -> JSON (see event_json.h).
#include "event_json.h"

#include <sys/ptrace.h>
#include <sys/socket.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace {

const char* call_name(SocketCall c) {
  switch (c) {
    case SocketCall::kConnect: return "connect";
    case SocketCall::kBind: return "bind";
    case SocketCall::kListen: return "listen";
    case SocketCall::kSendto: return "sendto";
    case SocketCall::kSendmsg: return "sendmsg";
    case SocketCall::kSendmmsg: return "sendmmsg";
    case SocketCall::kExisting: return "existing";
    case SocketCall::kInherited: return "inherited";
    case SocketCall::kFound: return "found";
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
    case LaunchStage::kCredentials: return "setuid";
    case LaunchStage::kExec: return "execve";
  }
  return nullptr;
}

const char* proto_name(const SocketInfo& s) {
  if ((s.type & 0xf) == SOCK_RAW) return "raw";
  switch (s.protocol) {
    case 6: return "tcp";
    case 262: return "mptcp";
    case 17: return "udp";
    case 136: return "udplite";
    case 1: return "icmp";
    case 58: return "icmp6";
  }
  return "?";
}

const char* rule_kind_name(RuleKind k) {
  switch (k) {
    case RuleKind::kFlow: return "flow";
    case RuleKind::kBind: return "bind";
    case RuleKind::kPending: return "pending";
  }
  return "?";
}

// A JSON writer for one object at a time: key() puts the comma and the name.
class Json {
 public:
  explicit Json(std::string* out) : out_(*out) {}

  void open() {
    out_ += '{';
    first_ = true;
  }
  void close() {
    out_ += '}';
    first_ = false;
  }
  Json& key(const char* k) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_ += k;
    out_ += "\":";
    return *this;
  }
  void str(const std::string& s) { str(s.data(), s.size()); }
  void str(const char* s) { str(s, strlen(s)); }
  // Control characters, quotes and backslashes escaped; other bytes as they are (the string
  // reaches V8 as UTF-8, invalid sequences replaced, as for any other string from the addon).
  void str(const char* s, size_t n) {
    out_ += '"';
    for (size_t i = 0; i < n; i++) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
      } else if (c < 0x20) {
        char esc[8];
        snprintf(esc, sizeof esc, "\\u%04x", c);
        out_ += esc;
      } else {
        ascii_ = ascii_ && c < 0x80;
        out_ += static_cast<char>(c);
      }
    }
    out_ += '"';
  }
  void num(int64_t v) {
    char b[24];
    out_.append(b, static_cast<size_t>(snprintf(b, sizeof b, "%" PRId64, v)));
  }
  void unum(uint64_t v) {
    char b[24];
    out_.append(b, static_cast<size_t>(snprintf(b, sizeof b, "%" PRIu64, v)));
  }
  // As many digits as give back the same double.
  void dbl(double v) {
    char b[32];
    out_.append(b, static_cast<size_t>(snprintf(b, sizeof b, "%.17g", v)));
  }
  void boolean(bool v) { out_ += v ? "true" : "false"; }
  void null() { out_ += "null"; }
  void raw(char c) { out_ += c; }
  bool ascii() const { return ascii_; }

  void endpoint(const Endpoint& e) {
    if (!e.valid()) return null();
    open();
    key("address").str(e.address_string());
    key("port").num(e.port);
    close();
  }

 private:
  std::string& out_;
  bool first_ = true;
  bool ascii_ = true;
};

void append_rules(Json& j, const std::vector<RuleSpec>& rules) {
  j.raw('[');
  for (size_t i = 0; i < rules.size(); i++) {
    if (i) j.raw(',');
    const RuleSpec& r = rules[i];
    j.open();
    j.key("kind").str(rule_kind_name(r.kind));
    j.key("proto").num(r.proto);
    j.key("local").endpoint(r.local);
    j.key("remote").endpoint(r.remote);
    j.close();
  }
  j.raw(']');
}

void append_socket_event(Json& j, const TraceEvent& e) {
  j.key("kind").str(e.kind == EventKind::kSocket ? "socket" : "pending");
  j.key("inode").unum(e.socket.inode);
  j.key("comm").str(e.comm);
  if (!e.thread_name.empty()) j.key("threadName").str(e.thread_name);
  j.key("call").str(call_name(e.call));
  j.key("fd").num(e.fd);
  j.key("family").num(e.socket.domain == AF_INET6 ? 6 : 4);
  j.key("proto").str(proto_name(e.socket));
  if ((e.socket.type & 0xf) == SOCK_RAW) j.key("protocol").num(e.socket.protocol);
  j.key("local").endpoint(e.socket.local);
  j.key("remotes").raw('[');
  for (size_t i = 0; i < e.remotes.size(); i++) {
    if (i) j.raw(',');
    j.endpoint(e.remotes[i]);
  }
  j.raw(']');
  j.key("rules");
  append_rules(j, e.rules);
  j.key("ruleGeneration").unum(e.rule_generation);
  if (e.has_entry) {
    j.key("entry").open();
    j.key("time").dbl(e.entry_ms);
    j.key("rules");
    append_rules(j, e.entry_rules);
    j.close();
  }
  if (e.call == SocketCall::kFound || e.call == SocketCall::kInherited) {
    j.key("exchangedBefore");
    if (e.exchanged_before < 0) j.null(); else j.num(e.exchanged_before);
  }
  if (!e.has_result) {
    j.key("result").null();
  } else {
    j.key("result").num(e.result);
    if (e.result < 0 && e.result > -4096) j.key("errno").str(errno_name(static_cast<int>(-e.result)));
  }
}

void append_event(Json& j, const TraceEvent& e) {
  j.open();
  j.key("time").dbl(e.time_ms);
  j.key("pid").num(e.pid);
  j.key("tid").num(e.tid);
  switch (e.kind) {
    case EventKind::kSocket:
    case EventKind::kPending:
      append_socket_event(j, e);
      break;
    case EventKind::kAttach:
      j.key("kind").str("attach");
      j.key("comm").str(e.comm);
      j.key("exe").str(e.exe);
      j.key("threads").num(e.threads);
      break;
    case EventKind::kSpawn:
      j.key("kind").str("spawn");
      j.key("child").num(e.child);
      j.key("thread").boolean(e.thread);
      j.key("how").str(e.spawn_event == PTRACE_EVENT_VFORK  ? "vfork"
                       : e.spawn_event == PTRACE_EVENT_FORK ? "fork"
                                                            : "clone");
      j.key("comm").str(e.comm);
      break;
    case EventKind::kExec:
      j.key("kind").str("exec");
      j.key("formerTid").num(e.former_tid);
      j.key("comm").str(e.comm);
      j.key("exe").str(e.exe);
      break;
    case EventKind::kExit:
      j.key("kind").str("exit");
      j.key("comm").str(e.comm);
      if (e.exited) j.key("code").num(e.code);
      else j.key("code").null();
      if (e.exited) j.key("signal").null();
      else j.key("signal").num(e.signal);
      j.key("core").boolean(e.core);
      if (const char* stage = stage_name(e.failed_stage)) {
        j.key("launchFailure").open();
        j.key("syscall").str(stage);
        j.key("errno").num(e.failed_errno);
        j.key("code").str(errno_name(e.failed_errno));
        j.key("message").str(strerror(e.failed_errno));
        j.close();
      }
      break;
    case EventKind::kWarning:
      j.key("kind").str("warning");
      j.key("message").str(e.message);
      break;
    case EventKind::kDone:
      j.key("kind").str("done");
      if (e.detached_at_ms > 0) j.key("detachedAt").dbl(e.detached_at_ms);
      break;
  }
  j.close();
}

}  // namespace

const char* errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E?";
}

void merge_pending_events(std::vector<TraceEvent>* batch) {
  std::vector<TraceEvent>& b = *batch;
  std::unordered_map<pid_t, size_t> open;  // tid -> its kPending event not ended yet
  std::vector<bool> merged(b.size(), false);
  bool any = false;
  for (size_t i = 0; i < b.size(); i++) {
    TraceEvent& e = b[i];
    auto it = open.find(e.tid);
    if (e.kind == EventKind::kSocket && e.has_result && it != open.end()) {
      TraceEvent& p = b[it->second];
      if (p.socket.inode == e.socket.inode && p.call == e.call) {
        e.has_entry = true;
        e.entry_ms = p.time_ms;
        e.entry_rules = std::move(p.rules);
        merged[it->second] = any = true;
      }
    }
    // anything else of the thread (its exit, an exec, another call) ends the chance
    if (it != open.end()) open.erase(it);
    if (e.kind == EventKind::kExec) {
      open.erase(e.pid);
      open.erase(e.former_tid);
    }
    if (e.kind == EventKind::kPending) open[e.tid] = i;
  }
  if (!any) return;
  size_t out = 0;
  for (size_t i = 0; i < b.size(); i++)
    if (!merged[i]) {
      if (out != i) b[out] = std::move(b[i]);
      out++;
    }
  b.resize(out);
}

bool append_events_json(const std::vector<TraceEvent>& batch, std::string* out) {
  Json j(out);
  out->reserve(out->size() + batch.size() * 400);
  j.raw('[');
  for (size_t i = 0; i < batch.size(); i++) {
    if (i) j.raw(',');
    append_event(j, batch[i]);
  }
  j.raw(']');
  return j.ascii();
}
