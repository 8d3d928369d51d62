// The native path: capture records written to the file without the controller's per-packet
// work, for packets whose owner the controller has already decided. The verdicts are the
// controller's own (src/tracker/endpoints.ts), remembered per direction of a TCP connection for
// as long as its table says they hold: the controller forgets a direction when the table
// changes anything about its flow, so this path holds no rule of its own. Anything it is not
// sure of is a miss, left to the controller: a SYN, a fragment, IPv4 options past the captured bytes, IPv6 extension headers,
// an interface the file has no block for yet, a TLS handshake record while keys are awaited.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

enum class RecordFormat : uint8_t { kPcap = 0, kPcapng = 1 };

constexpr size_t kMarkSize = 10;

// One direction of a TCP connection: family, source, destination (16 bytes each, IPv4 in the
// first 4), ports.
struct DirectionKey {
  uint8_t family = 0;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  uint16_t sport = 0, dport = 0;
  bool operator==(const DirectionKey& o) const {
    return family == o.family && sport == o.sport && dport == o.dport && memcmp(src, o.src, 16) == 0 &&
           memcmp(dst, o.dst, 16) == 0;
  }
};

struct DirectionKeyHash {
  size_t operator()(const DirectionKey& k) const;
};

// The controller's verdict for one direction: its packets captured in [since, until) (ms) are
// the owner's, written with these pcapng options.
struct KnownDirection {
  double since = 0, until = 0;
  std::string options;    // the owner's EPB options (pid/tid, comment), pcapng only
  bool sent_on_loopback = false;  // a loopback copy of it is the program's outgoing packet
  uint32_t slot = 0;              // the controller's name for this verdict (its owner), said in marks
};

// What run() is allowed to do, and may not go past.
struct RunLimits {
  double end_ms;          // packets captured after this are nobody's (a detach): misses
  double max_records;     // records it may write (-c less what is written)
  size_t out_limit;       // stop before a record that starts past this offset (-C)
  double period_sec;      // -G (0: none): stop at the first packet of a later period
  double period;
  bool tls_watch;         // a TLS handshake record is a miss (the controller notes ClientHellos)
  // Where each record ends in out and its capture time (ms), in pairs, for a file that holds
  // records back one by one; nullptr: not needed. A run stops (kUnits) when it is full.
  double* units = nullptr;
  size_t units_capacity = 0;
  // For accounting (live flows), kMarkSize numbers per record written: where it starts in the
  // batch, the slot of its direction, the packet type written, sec, nsec, and the TCP fields
  // seq, ack, flags | window << 8, IP length, payload length (IP length: UINT32_MAX when the
  // TCP header is not wholly captured; then there are none). nullptr: not needed. A run stops
  // (kUnits) when it is full.
  uint32_t* marks = nullptr;
  size_t marks_capacity = 0;
};

struct RunResult {
  size_t next = 0;        // offset in the batch of the first record not consumed
  size_t out_end = 0;     // end of what was written in out
  double records = 0, wire_bytes = 0, seen = 0, duplicates = 0;
  double last_ms = 0;     // capture time of the last record written
  size_t need = 0;        // kFull: the bytes the record at `next` needs
  int stop = 0;           // kEnd, kMiss, kFull, kLimit or kUnits (units or marks full)
  static constexpr int kEnd = 0, kMiss = 1, kFull = 2, kLimit = 3, kUnits = 4;
};

class FastPath {
 public:
  static constexpr int kMaxInterfaces = 64;

  explicit FastPath(RecordFormat format) : format_(format) {}
  void remember(const DirectionKey& k, KnownDirection v) { known_[k] = std::move(v); }
  void forget(const DirectionKey& k) { known_.erase(k); }
  void forget_all() { known_.clear(); }
  size_t known() const { return known_.size(); }
  // pcapng: the interface id a file gave an ifindex (its description block is in the file).
  void set_interface(int ifindex, int ifid);
  void forget_interfaces() { ifids_.clear(); }

  // Writes the records of batch[at, size) it can into out[out_at, out_size); per_ifid counts
  // the records written per interface id (kMaxInterfaces entries).
  RunResult run(const uint8_t* batch, size_t size, size_t at, uint8_t* out, size_t out_at, size_t out_size,
                const RunLimits& limits, uint32_t* per_ifid) const;

 private:
  RecordFormat format_;
  std::unordered_map<DirectionKey, KnownDirection, DirectionKeyHash> known_;
  std::vector<std::pair<int, int>> ifids_;  // few: a linear search
};
