// TPACKET_V3 ring reader. The reader copies each retired block's packets into a reused slab
// and returns the block to the kernel at once; when the controller holds every slab
// (max_in_flight bytes) it stops returning blocks, so the kernel counts drops instead of this
// process growing without bound.
#include "capture.h"

#include <algorithm>

#include "pcap_filter.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace {

void put32(uint8_t* p, uint32_t x) { memcpy(p, &x, 4); }
void put16(uint8_t* p, uint16_t x) { memcpy(p, &x, 2); }

}  // namespace

std::shared_ptr<Capture> Capture::open(const CaptureOptions& o, std::string* syscall_name, int* err) {
  std::shared_ptr<Capture> c(new Capture());
  c->options_ = o;
  auto fail = [&](const char* what) {
    *syscall_name = what;
    *err = errno;
    return nullptr;
  };
  // Protocol 0: nothing is received until start() binds with ETH_P_ALL, after the filter is set.
  c->fd_.reset(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!c->fd_.valid()) return fail("socket(AF_PACKET)");
  int version = TPACKET_V3;
  if (setsockopt(c->fd_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0)
    return fail("setsockopt(PACKET_VERSION)");
  tpacket_req3 req;
  memset(&req, 0, sizeof req);
  req.tp_block_size = o.block_size;
  req.tp_block_nr = o.block_count;
  req.tp_frame_size = 2048;  // V3 frames are variable; this only has to divide the block
  req.tp_frame_nr = o.block_size / req.tp_frame_size * o.block_count;
  req.tp_retire_blk_tov = o.retire_ms;
  if (setsockopt(c->fd_.get(), SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
    return fail("setsockopt(PACKET_RX_RING)");
  c->ring_size_ = static_cast<size_t>(o.block_size) * o.block_count;
  void* ring = mmap(nullptr, c->ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED,
                    c->fd_.get(), 0);
  if (ring == MAP_FAILED)  // MAP_LOCKED can exceed RLIMIT_MEMLOCK for non-root: retry without
    ring = mmap(nullptr, c->ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd_.get(), 0);
  if (ring == MAP_FAILED) return fail("mmap(PACKET_RX_RING)");
  c->ring_ = static_cast<uint8_t*>(ring);
  c->wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!c->wake_fd_.valid()) return fail("eventfd");
  return c;
}

Capture::~Capture() {
  stop();
  if (ring_) munmap(ring_, ring_size_);
}

int Capture::attach_bpf(int prog_fd) {
  if (setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof prog_fd) < 0) return -errno;
  return 0;
}

int Capture::attach_classic(const std::vector<sock_filter>& p) {
  sock_fprog prog{static_cast<unsigned short>(p.size()), const_cast<sock_filter*>(p.data())};
  if (setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return -errno;
  return 0;
}

int Capture::start(Deliver deliver) {
  deliver_ = std::move(deliver);
  // The first slabs are made and touched now, before the command runs: page faults in the
  // middle of a burst would slow the reader just when the ring fills. More are made only
  // when the controller falls behind.
  size_t ready = std::min<uint64_t>(options_.ready_slabs, options_.max_in_flight / options_.block_size);
  for (; slabs_made_ < ready; slabs_made_++) {
    std::unique_ptr<uint8_t[]> s(new uint8_t[options_.block_size]);
    memset(s.get(), 0, options_.block_size);
    free_slabs_.push_back(std::move(s));
  }
  sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = 0;  // all interfaces
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) return -errno;
  thread_ = std::thread(&Capture::run, this);
  return 0;
}

void Capture::stop() {
  if (!thread_.joinable()) return;
  {
    // under the mutex: a reader between checking its wait condition and sleeping must see it
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_.get(), &one, sizeof one);
  (void)ignored;
  room_.notify_all();
  thread_.join();
}

void Capture::recycle(std::unique_ptr<uint8_t[]> slab) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_slabs_.push_back(std::move(slab));
  room_.notify_all();
}

std::unique_ptr<uint8_t[]> Capture::take_slab() {
  std::unique_lock<std::mutex> lock(mutex_);
  size_t max_slabs = std::max<uint64_t>(2, options_.max_in_flight / options_.block_size);
  if (free_slabs_.empty() && slabs_made_ >= max_slabs) stats_.stalls++;
  room_.wait(lock, [&] { return !free_slabs_.empty() || slabs_made_ < max_slabs || stopping_; });
  if (!free_slabs_.empty()) {
    auto s = std::move(free_slabs_.back());
    free_slabs_.pop_back();
    return s;
  }
  slabs_made_++;  // beyond max only while stopping: the last blocks must still be handed over
  return std::unique_ptr<uint8_t[]>(new uint8_t[options_.block_size]);  // not zeroed: filled below
}

void Capture::read_kernel_stats() {
  tpacket_stats_v3 st;
  socklen_t len = sizeof st;
  if (getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return;
  std::lock_guard<std::mutex> lock(mutex_);  // the kernel resets its counters on every read
  stats_.packets += st.tp_packets;
  stats_.drops += st.tp_drops;
}

CaptureStats Capture::stats() {
  read_kernel_stats();
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

// Hands over every block the kernel has retired; returns whether any was.
bool Capture::process_ready_blocks() {
  bool any = false;
  for (;;) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(ring_ + static_cast<size_t>(next_block_) *
                                                                    options_.block_size);
    if (!(__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
      return any;
    CaptureBatch batch;
    batch.slab = take_slab();
    uint8_t* out = batch.slab.get();
    uint32_t n = block->hdr.bh1.num_pkts;
    auto* hdr = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) +
                                                block->hdr.bh1.offset_to_first_pkt);
    // A record (28-byte header + data) is never larger than its frame in the block (tpacket3
    // header + sockaddr_ll + data), so a block-sized slab always holds the whole batch.
    size_t at = 0;
    uint32_t kept = 0;
    auto* h = hdr;
    for (uint32_t i = 0; i < n; i++) {
      auto* sll = reinterpret_cast<sockaddr_ll*>(reinterpret_cast<uint8_t*>(h) +
                                                 TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      auto* next = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(h) + h->tp_next_offset);
      const uint8_t* data = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
      if (!wanted(sll->sll_ifindex, data, h->tp_len, h->tp_snaplen)) {
        h = next;
        continue;
      }
      kept++;
      put32(out + at, h->tp_sec);
      put32(out + at + 4, h->tp_nsec);
      put32(out + at + 8, h->tp_snaplen);
      put32(out + at + 12, h->tp_len);
      put32(out + at + 16, static_cast<uint32_t>(sll->sll_ifindex));
      put16(out + at + 20, ntohs(sll->sll_protocol));
      put16(out + at + 22, sll->sll_hatype);
      out[at + 24] = sll->sll_pkttype;
      out[at + 25] = out[at + 26] = out[at + 27] = 0;
      memcpy(out + at + kRecordHeaderSize, data, h->tp_snaplen);
      at += kRecordHeaderSize + h->tp_snaplen;
      h = next;
    }
    batch.size = at;
    batch.packets = kept;
    __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    next_block_ = (next_block_ + 1) % options_.block_count;
    if (kept > 0)
      deliver_(std::move(batch));
    else
      recycle(std::move(batch.slab));
    any = true;
  }
}

// -i and -f: the interfaces asked for, and the user's pcap-filter expression (libpcap's own
// interpreter, on the IP packet as DLT_RAW sees it).
bool Capture::wanted(int ifindex, const uint8_t* data, uint32_t len, uint32_t caplen) const {
  if (!options_.interfaces.empty() &&
      std::find(options_.interfaces.begin(), options_.interfaces.end(), ifindex) == options_.interfaces.end())
    return false;
  if (options_.user_filter.empty()) return true;
  return pcap_filter_accepts(options_.user_filter, data, len, caplen);
}

void Capture::run() {
  pollfd fds[2] = {{fd_.get(), POLLIN | POLLERR, 0}, {wake_fd_.get(), POLLIN, 0}};
  while (!stopping_) {
    process_ready_blocks();
    poll(fds, 2, 100);
  }
  // Stopping: the block being filled is retired by the kernel within retire_ms; wait for it
  // so that the last packets are not left in the ring.
  for (int quiet = 0, rounds = 0; quiet < 2 && rounds < 20; rounds++) {
    usleep(options_.retire_ms * 1000 + 5000);
    quiet = process_ready_blocks() ? 0 : quiet + 1;
  }
  read_kernel_stats();
}
