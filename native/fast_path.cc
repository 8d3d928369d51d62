#include "fast_path.h"

#include <cmath>

#include "capture.h"

namespace {

constexpr uint16_t kArphrdLoopback = 772;
constexpr uint8_t kPacketOutgoing = 4;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTlsHandshake = 0x16;
constexpr size_t kSll2Size = 20;
constexpr uint32_t kBlockEpb = 6;
constexpr uint32_t kEpbFlagsOption = 2 | (4 << 16);  // code 2, length 4
constexpr uint32_t kEpbInbound = 1, kEpbOutbound = 2;
constexpr uint32_t kNoFields = UINT32_MAX;

uint32_t get32(const uint8_t* p) {
  uint32_t x;
  memcpy(&x, p, 4);
  return x;
}
uint16_t get16(const uint8_t* p) {
  uint16_t x;
  memcpy(&x, p, 2);
  return x;
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void put32(uint8_t* p, uint32_t x) { memcpy(p, &x, 4); }
size_t pad4(size_t n) { return (n + 3) & ~size_t{3}; }

void put_sll2(uint8_t* h, uint16_t protocol, int32_t ifindex, uint16_t hatype, uint8_t pkttype) {
  memset(h, 0, kSll2Size);
  h[0] = protocol >> 8;
  h[1] = protocol & 0xff;
  uint32_t i = static_cast<uint32_t>(ifindex);
  h[4] = i >> 24;
  h[5] = (i >> 16) & 0xff;
  h[6] = (i >> 8) & 0xff;
  h[7] = i & 0xff;
  h[8] = hatype >> 8;
  h[9] = hatype & 0xff;
  h[10] = pkttype;
}

// The TCP direction of an IP packet, as src/packet/dissect.ts would see it, or false when that
// walk would find anything more than a plain TCP segment with its flags captured (a miss).
bool tcp_direction(const uint8_t* d, uint32_t caplen, DirectionKey* k, uint8_t* flags, uint32_t* payload, uint32_t* l4_at) {
  if (caplen < 1) return false;
  uint32_t l4;
  int version = d[0] >> 4;
  if (version == 4) {
    if (caplen < 20) return false;
    uint32_t ihl = (d[0] & 0x0f) * 4u;
    if (ihl < 20 || caplen < ihl) return false;
    if (be16(d + 6) & 0x3fff) return false;  // a fragment (more to come, or an offset)
    if (d[9] != kTcp) return false;
    k->family = 4;
    memcpy(k->src, d + 12, 4);
    memcpy(k->dst, d + 16, 4);
    l4 = ihl;
  } else if (version == 6) {
    if (caplen < 40 || d[6] != kTcp) return false;  // extension headers: the controller walks them
    k->family = 6;
    memcpy(k->src, d + 8, 16);
    memcpy(k->dst, d + 24, 16);
    l4 = 40;
  } else {
    return false;
  }
  if (caplen < l4 + 14) return false;
  k->sport = be16(d + l4);
  k->dport = be16(d + l4 + 2);
  *flags = d[l4 + 13];
  *payload = l4 + (d[l4 + 12] >> 4) * 4u;
  *l4_at = l4;
  return true;
}

uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// A record's compact accounting fields (RunLimits::marks), as src/flows/flow-packet.ts reads
// the packet: the IP length from its header (IPv6: a zero payload length means the captured
// length), the payload length from it, the TCP header's fields. A TCP header not wholly
// captured gets no fields (kNoFields): the controller reads that record itself.
void mark_fields(uint32_t* m, const uint8_t* d, uint32_t caplen, uint32_t l4, uint32_t payload) {
  if (caplen < l4 + 20) {
    m[8] = kNoFields;
    return;
  }
  int64_t ip_len;
  if ((d[0] >> 4) == 4) {
    ip_len = be16(d + 2);
  } else {
    uint16_t p = be16(d + 4);
    ip_len = p == 0 ? caplen : 40 + p;
  }
  int64_t payload_len = ip_len - static_cast<int64_t>(payload);
  m[5] = be32(d + l4 + 4);
  m[6] = be32(d + l4 + 8);
  m[7] = d[l4 + 13] | static_cast<uint32_t>(be16(d + l4 + 14)) << 8;
  m[8] = static_cast<uint32_t>(ip_len);
  m[9] = payload_len > 0 ? static_cast<uint32_t>(payload_len) : 0;
}

}  // namespace

size_t DirectionKeyHash::operator()(const DirectionKey& k) const {
  // FNV-1a over the fields that differ between connections
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  };
  size_t n = k.family == 4 ? 4 : 16;
  mix(k.src, n);
  mix(k.dst, n);
  uint8_t ports[4] = {static_cast<uint8_t>(k.sport >> 8), static_cast<uint8_t>(k.sport),
                      static_cast<uint8_t>(k.dport >> 8), static_cast<uint8_t>(k.dport)};
  mix(ports, 4);
  return static_cast<size_t>(h);
}

void FastPath::set_interface(int ifindex, int ifid) {
  for (auto& e : ifids_)
    if (e.first == ifindex) {
      e.second = ifid;
      return;
    }
  ifids_.emplace_back(ifindex, ifid);
}

RunResult FastPath::run(const uint8_t* batch, size_t size, size_t at, uint8_t* out, size_t out_at, size_t out_size,
                        const RunLimits& limits, uint32_t* per_ifid) const {
  RunResult r;
  r.out_end = out_at;
  auto stop = [&](int why) {
    r.next = at;
    r.stop = why;
    return r;
  };
  while (at + kRecordHeaderSize <= size) {
    const uint8_t* h = batch + at;
    uint32_t sec = get32(h), nsec = get32(h + 4), caplen = get32(h + 8), len = get32(h + 12);
    int32_t ifindex = static_cast<int32_t>(get32(h + 16));
    uint16_t protocol = get16(h + 20), hatype = get16(h + 22);
    uint8_t pkttype = h[24], rflags = h[25];
    uint16_t gap = get16(h + 26);
    size_t start = at + kRecordHeaderSize;
    size_t next = start + caplen + gap;
    if (rflags & kRecordSkip) {
      at = next;
      continue;
    }
    if (start + caplen > size) return stop(RunResult::kMiss);
    if (pkttype == kPacketOutgoing && hatype == kArphrdLoopback) {
      // the loopback copy the kernel filter drops already (see pipeline.ts)
      r.seen++;
      r.duplicates++;
      at = next;
      continue;
    }
    // the same arithmetic as the controller's (a double, as JavaScript computes it)
    double ts_ms = static_cast<double>(sec) * 1000 + static_cast<double>(nsec) / 1e6;
    if (ts_ms > limits.end_ms || known_.empty()) return stop(RunResult::kMiss);
    const uint8_t* data = batch + start;
    DirectionKey key;
    uint8_t tcp_flags;
    uint32_t payload, l4;
    if (!tcp_direction(data, caplen, &key, &tcp_flags, &payload, &l4) || (tcp_flags & kTcpSyn))
      return stop(RunResult::kMiss);
    if (limits.tls_watch && payload < caplen && data[payload] == kTlsHandshake) return stop(RunResult::kMiss);
    auto it = known_.find(key);
    if (it == known_.end() || ts_ms < it->second.since || ts_ms >= it->second.until) return stop(RunResult::kMiss);
    const KnownDirection& v = it->second;
    int ifid = 0;
    if (format_ == RecordFormat::kPcapng) {
      ifid = -1;
      for (const auto& e : ifids_)
        if (e.first == ifindex) ifid = e.second;
      if (ifid < 0 || ifid >= kMaxInterfaces) return stop(RunResult::kMiss);
    }
    // the file's limits: -c, -C (the size before this record), -G (its period)
    if (r.records >= limits.max_records || r.out_end > limits.out_limit) return stop(RunResult::kLimit);
    if (limits.period_sec > 0 &&
        std::floor(static_cast<double>(sec) * 1000 / 1000 / limits.period_sec) > limits.period)
      return stop(RunResult::kLimit);
    if (limits.units && r.records >= static_cast<double>(limits.units_capacity)) return stop(RunResult::kUnits);
    if (limits.marks && r.records >= static_cast<double>(limits.marks_capacity)) return stop(RunResult::kUnits);
    if (hatype == kArphrdLoopback && v.sent_on_loopback) pkttype = kPacketOutgoing;
    uint32_t captured = static_cast<uint32_t>(kSll2Size) + caplen;
    uint8_t* o = out + r.out_end;
    size_t need;
    if (format_ == RecordFormat::kPcap) {
      need = 16 + captured;
      if (r.out_end + need > out_size) {
        r.need = need;
        return stop(RunResult::kFull);
      }
      put32(o, sec);
      put32(o + 4, nsec);
      put32(o + 8, captured);
      put32(o + 12, len + kSll2Size);
      put_sll2(o + 16, protocol, ifindex, hatype, pkttype);
      memcpy(o + 16 + kSll2Size, data, caplen);
    } else {
      need = 28 + pad4(captured) + 8 + v.options.size() + 8;
      if (r.out_end + need > out_size) {
        r.need = need;
        return stop(RunResult::kFull);
      }
      uint64_t ns = static_cast<uint64_t>(sec) * 1000000000ull + nsec;
      put32(o, kBlockEpb);
      put32(o + 4, static_cast<uint32_t>(need));
      put32(o + 8, static_cast<uint32_t>(ifid));
      put32(o + 12, static_cast<uint32_t>(ns >> 32));
      put32(o + 16, static_cast<uint32_t>(ns));
      put32(o + 20, captured);
      put32(o + 24, len + kSll2Size);
      put_sll2(o + 28, protocol, ifindex, hatype, pkttype);
      memcpy(o + 28 + kSll2Size, data, caplen);
      size_t p = 28 + captured;
      while (p < 28 + pad4(captured)) o[p++] = 0;
      put32(o + p, kEpbFlagsOption);
      put32(o + p + 4, pkttype == kPacketOutgoing ? kEpbOutbound : kEpbInbound);
      p += 8;
      memcpy(o + p, v.options.data(), v.options.size());
      p += v.options.size();
      put32(o + p, 0);
      put32(o + p + 4, static_cast<uint32_t>(need));
      per_ifid[ifid]++;
    }
    r.out_end += need;
    if (limits.units) {
      size_t i = static_cast<size_t>(r.records) * 2;
      limits.units[i] = static_cast<double>(r.out_end);
      limits.units[i + 1] = ts_ms;
    }
    if (limits.marks) {
      uint32_t* m = limits.marks + static_cast<size_t>(r.records) * kMarkSize;
      m[0] = static_cast<uint32_t>(at);
      m[1] = v.slot;
      m[2] = pkttype;
      m[3] = sec;
      m[4] = nsec;
      mark_fields(m, data, caplen, l4, payload);
    }
    r.records++;
    r.seen++;
    r.wire_bytes += len;
    r.last_ms = ts_ms;
    at = next;
  }
  return stop(RunResult::kEnd);
}
