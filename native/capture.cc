// TPACKET_V3 ring reader. Each retired block is turned into a batch in place: every packet's
// 28-byte record header is written into the frame's header room right before its data, and
// the block itself is lent to the controller, which reads it and gives it back (recycle()).
// Full blocks are not copied: the ring is most of the memory the capture uses. While the
// controller holds a block the kernel cannot fill it; when it holds all of them the kernel
// counts drops instead of this process growing. Blocks retired by their timeout with little
// in them are copied (up to 16 MiB in all) and go back to the kernel at once.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <csignal>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace {

void put32(uint8_t* p, uint32_t x) { memcpy(p, &x, 4); }
void put16(uint8_t* p, uint16_t x) { memcpy(p, &x, 2); }

// Copied batches the controller may hold at once; beyond, blocks are lent (and the ring fills).
constexpr size_t kMaxCopiedBytes = 16 << 20;

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

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
  // Received packets are then stamped as they are queued (netif_rx), not when the receive
  // softirq reaches the tap: a loopback packet's time is inside the send call that made it,
  // even when softirqs run late under load. The UDP send windows rely on that
  // (src/tracker/send-windows.ts; net.core.netdev_tstamp_prequeue=0 undoes it, see there).
  int on = 1;
  setsockopt(c->fd_.get(), SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on);
  int version = TPACKET_V3;
  if (setsockopt(c->fd_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0)
    return fail("setsockopt(PACKET_VERSION)");
  tpacket_req3& req = c->req_;
  memset(&req, 0, sizeof req);
  req.tp_block_size = o.block_size;
  req.tp_block_nr = o.block_count;
  req.tp_frame_size = 2048;  // V3 frames are variable; this only has to divide the block
  req.tp_frame_nr = o.block_size / req.tp_frame_size * o.block_count;
  req.tp_retire_blk_tov = o.retire_ms;
  c->ring_size_ = static_cast<size_t>(o.block_size) * o.block_count;
  if (!o.defer_ring) {
    if (setsockopt(c->fd_.get(), SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
      return fail("setsockopt(PACKET_RX_RING)");
    const char* what = nullptr;
    if (int e = c->map_ring(&what)) {
      errno = e;
      return fail(what);
    }
  }
  c->wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!c->wake_fd_.valid()) return fail("eventfd");
  return c;
}

Capture::~Capture() {
  stop();
  gate_->give_up();  // (a tracer still waiting: the capture will never be live)
  if (ring_) munmap(ring_, ring_size_);
}

// Maps the ring the socket has: 0 or an errno, with the call that failed.
int Capture::map_ring(const char** syscall_name) {
  // (not MAP_LOCKED: the ring's pages are the kernel's, never swapped, and the packet socket
  // maps every one of them at once anyway; locking them again took 12 ms of a 376 MiB ring)
  void* ring = mmap(nullptr, ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (ring == MAP_FAILED) {
    *syscall_name = "mmap(PACKET_RX_RING)";
    return errno;
  }
  ring_ = static_cast<uint8_t*>(ring);
  return 0;
}

int Capture::bind_all() {
  sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = 0;  // all interfaces
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) return -errno;
  live_cpu_seconds_ = process_cpu_seconds();
  live_ = true;
  if (!options_.defer_ring) gate_->open();  // (deferred: its owner opens it, see open_gate())
  return 0;
}

int Capture::ring_error(std::string* syscall_name) const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  *syscall_name = ring_error_syscall_;
  return ring_errno_;
}

// defer_ring: a grandchild process makes the ring (setsockopt on the socket it shares with
// this one) and writes its errno to a pipe. A process, not a thread: a thread in that call
// would hold up this process's exit until the allocation ends, and a short command's run must
// not wait for a ring it never needed. A grandchild, so that it is nobody's child here (the
// tracer waits for any child). Between fork and exit only system calls are made, and every fd
// but the socket and the pipe is closed first (a pipe the caller waits on must not stay open).
// Returns 0, or -errno when the helper could not be started.
int Capture::start_ring_helper() {
  int result[2];
  if (pipe2(result, O_CLOEXEC) < 0) return -errno;
  int sock = fd_.get(), out = result[1];
  pid_t child = static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
  if (child < 0) {
    int e = errno;
    close(result[0]);
    close(result[1]);
    return -e;
  }
  if (child == 0) {
    int lo = sock < out ? sock : out, hi = sock < out ? out : sock;
    if (lo > 0) syscall(SYS_close_range, 0u, static_cast<unsigned>(lo - 1), 0u);
    if (hi > lo + 1) syscall(SYS_close_range, static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0u);
    syscall(SYS_close_range, static_cast<unsigned>(hi + 1), ~0u, 0u);
    pid_t helper = static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
    if (helper == 0) {
      // the terminal's signals are for tracedump: an interrupted run leaves this to finish alone
      struct sigaction ignore;
      memset(&ignore, 0, sizeof ignore);
      ignore.sa_handler = SIG_IGN;
      for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU}) sigaction(sig, &ignore, nullptr);
      uint8_t e = 0;
      if (syscall(SYS_setsockopt, sock, SOL_PACKET, PACKET_RX_RING, &req_, sizeof req_) < 0) e = static_cast<uint8_t>(errno);
      syscall(SYS_write, out, &e, 1);
      syscall(SYS_exit_group, 0);
    }
    if (helper < 0) {
      uint8_t e = static_cast<uint8_t>(errno ? errno : EAGAIN);
      syscall(SYS_write, out, &e, 1);
    }
    syscall(SYS_exit_group, 0);
  }
  close(result[1]);
  ring_result_.reset(result[0]);
  int status;
  while (waitpid(child, &status, __WALL) < 0 && errno == EINTR) {
  }
  return 0;
}

// defer_ring's reader: waits for the helper's word, maps the ring, binds, then reads as run().
void Capture::run_deferred() {
  pthread_setname_np(pthread_self(), "td-capture");
  pollfd fds[2] = {{ring_result_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  bool failed = false;
  while (!stopping_) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (!fds[0].revents) continue;
    uint8_t e = 0;
    ssize_t n = read(ring_result_.get(), &e, 1);
    const char* what = "setsockopt(PACKET_RX_RING)";
    int err = n == 1 ? e : (n == 0 ? EPIPE : errno);
    if (err == 0) err = map_ring(&what);
    if (err == 0) {
      int b = bind_all();
      if (b < 0) {
        err = -b;
        what = "bind(AF_PACKET)";
      }
    }
    if (err != 0) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      ring_error_syscall_ = what;
      ring_errno_ = err;
      failed = true;
      break;
    }
    ring_result_.reset();
    return run();
  }
  // the ring failed (the program must not run on uncaptured), or the capture was stopped first
  if (failed) gate_->fail();
  else gate_->give_up();
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

int Capture::start(Deliver deliver, const char** syscall_name) {
  deliver_ = std::move(deliver);
  lent_.assign(options_.block_count, 0);
  consumer_tid_ = static_cast<int>(gettid());
  errno = 0;
  consumer_nice_ = getpriority(PRIO_PROCESS, consumer_tid_);
  if (errno) consumer_nice_ = 0;
  if (const char* b = getenv("TRACEDUMP_CAPTURE_BOOST")) boost_nice_ = atoi(b);
  if (options_.defer_ring && !ring_) {
    *syscall_name = "clone (the ring's helper process)";
    if (int r = start_ring_helper()) return r;
    thread_ = std::thread(&Capture::run_deferred, this);
    return 0;
  }
  *syscall_name = "bind(AF_PACKET)";
  if (int r = bind_all()) return r;
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

void Capture::recycle(Slab slab) {
  if (!slab) return;
  if (slab.copied()) {
    std::lock_guard<std::mutex> lock(mutex_);
    copied_bytes_ -= slab.copy_size();
    return;  // the copy is freed with slab
  }
  release_block(slab.block());
}

void Capture::release_block(uint32_t block) {
  auto* desc = reinterpret_cast<tpacket_block_desc*>(ring_ + static_cast<size_t>(block) * options_.block_size);
  std::lock_guard<std::mutex> lock(mutex_);
  if (block >= lent_.size() || !lent_[block]) return;
  lent_[block] = 0;
  lent_count_--;
  __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  if (boosted_ && lent_count_ == 0) {
    boosted_ = false;
    setpriority(PRIO_PROCESS, consumer_tid_, consumer_nice_);
  }
  room_.notify_all();
}

void Capture::read_kernel_stats() {
  if (!live_) return;  // (a deferred ring being made holds the socket's lock)
  tpacket_stats_v3 st;
  socklen_t len = sizeof st;
  if (getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return;
  std::lock_guard<std::mutex> lock(mutex_);  // the kernel resets its counters on every read
  stats_.packets += st.tp_packets;
  stats_.drops += st.tp_drops;
  placed_ += st.tp_packets - st.tp_drops;  // (a TPACKET_V3 tp_packets counts the drops too)
}

CaptureStats Capture::stats() {
  read_kernel_stats();
  std::lock_guard<std::mutex> lock(mutex_);
  CaptureStats s = stats_;
  s.waiting = placed_ > handed_ ? placed_ - handed_ : 0;
  return s;
}

// Hands over every block the kernel has retired; returns whether any was.
bool Capture::process_ready_blocks() {
  bool any = false;
  for (;;) {
    uint8_t* base = ring_ + static_cast<size_t>(next_block_) * options_.block_size;
    auto* block = reinterpret_cast<tpacket_block_desc*>(base);
    {
      // A block still lent to the controller reads TP_STATUS_USER too: it is not new.
      std::lock_guard<std::mutex> lock(mutex_);
      if (lent_[next_block_]) return any;
    }
    if (!(__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
      return any;
    uint32_t n = block->hdr.bh1.num_pkts;
    uint8_t* h = base + block->hdr.bh1.offset_to_first_pkt;
    uint8_t* first = nullptr;  // the first record's header
    uint8_t* end = nullptr;    // the end of the last record's data
    uint8_t* prev = nullptr;   // the previous record's header (its gap is set once this one is known)
    uint32_t kept = 0;
    bool fits = true;
    for (uint32_t i = 0; i < n; i++) {
      auto* th = reinterpret_cast<tpacket3_hdr*>(h);
      // Everything needed is read before the record header is written over the frame's room.
      uint32_t next_offset = th->tp_next_offset, sec = th->tp_sec, nsec = th->tp_nsec;
      uint32_t snaplen = th->tp_snaplen, len = th->tp_len;
      uint16_t mac = th->tp_mac;
      auto* sll = reinterpret_cast<sockaddr_ll*>(h + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      int ifindex = sll->sll_ifindex;
      uint16_t protocol = ntohs(sll->sll_protocol), hatype = sll->sll_hatype;
      uint8_t pkttype = sll->sll_pkttype;
      uint8_t* data = h + mac;
      // The header room of a SOCK_DGRAM frame (tpacket3_hdr + sockaddr_ll, then alignment) is
      // 96 bytes; the record header takes the last 28 of them.
      if (mac < TPACKET_ALIGN(sizeof(tpacket3_hdr)) + kRecordHeaderSize) {
        fits = false;  // never seen: a kernel that puts data right after its headers
        break;
      }
      uint8_t* rec = data - kRecordHeaderSize;
      bool want = wanted(ifindex, data, len, snaplen);
      put32(rec, sec);
      put32(rec + 4, nsec);
      put32(rec + 8, snaplen);
      put32(rec + 12, len);
      put32(rec + 16, static_cast<uint32_t>(ifindex));
      put16(rec + 20, protocol);
      put16(rec + 22, hatype);
      rec[24] = pkttype;
      rec[25] = want ? 0 : kRecordSkip;
      put16(rec + 26, 0);
      if (prev) put16(prev + 26, static_cast<uint16_t>(rec - end));
      if (!first) first = rec;
      prev = rec;
      end = data + snaplen;
      if (want) kept++;
      if (next_offset == 0) break;
      h += next_offset;
    }
    next_block_ = (next_block_ + 1) % options_.block_count;
    any = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      handed_ += n;
    }
    if (!fits || kept == 0) {
      if (!fits) {
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.drops += n;
      }
      __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      continue;
    }
    size_t bytes = static_cast<size_t>(end - first);
    bool copy = false;
    if (bytes <= options_.block_size / 4) {
      // A block retired by its timeout holds little: copy it and give the block back now, so
      // that a controller busy for a moment cannot use up the ring with near-empty blocks
      // (they retire every retire_ms). Full blocks (bulk traffic) are lent without a copy.
      std::lock_guard<std::mutex> lock(mutex_);
      copy = copied_bytes_ + bytes <= kMaxCopiedBytes;
      if (copy) copied_bytes_ += bytes;
    }
    if (copy) {
      std::unique_ptr<uint8_t[]> mem(new uint8_t[bytes]);
      memcpy(mem.get(), first, bytes);
      __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      CaptureBatch batch;
      batch.slab = Slab(std::move(mem), bytes);
      batch.size = bytes;
      batch.packets = kept;
      deliver_(std::move(batch));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      lent_[(next_block_ + options_.block_count - 1) % options_.block_count] = 1;
      lent_count_++;
      // A quarter of the ring waits for the controller: from here on it must win the CPU
      // from the traced program (whose traffic fills the ring), or packets are lost. Only
      // while the backlog lasts, so ordinary traffic leaves priorities alone. Refused
      // without CAP_SYS_NICE: then nothing changes.
      if (!boosted_ && boost_nice_ < consumer_nice_ && lent_count_ * 4 >= options_.block_count &&
          setpriority(PRIO_PROCESS, consumer_tid_, boost_nice_) == 0)
        boosted_ = true;
    }
    CaptureBatch batch;
    batch.slab = Slab(first, (next_block_ + options_.block_count - 1) % options_.block_count);
    batch.size = static_cast<size_t>(end - first);
    batch.packets = kept;
    deliver_(std::move(batch));
  }
}

// -i and -f: the interfaces asked for, and the user's pcap-filter expression (libpcap's own
// interpreter, on the IP packet as DLT_RAW sees it).
bool Capture::wanted(int ifindex, const uint8_t* data, uint32_t len, uint32_t caplen) const {
  if (!options_.interfaces.empty() &&
      std::find(options_.interfaces.begin(), options_.interfaces.end(), ifindex) == options_.interfaces.end())
    return false;
  if (options_.user_filter.empty()) return true;
  return pcap_filter_accepts(options_.user_filter.data(), data, len, caplen);
}

void Capture::run() {
  pthread_setname_np(pthread_self(), "td-capture");
  // The reader does little (a record header per packet) but must run as soon as a block is
  // retired, also when the traced program keeps both CPUs busy.
  if (boost_nice_ < consumer_nice_) setpriority(PRIO_PROCESS, static_cast<int>(gettid()), boost_nice_);
  pollfd fds[2] = {{fd_.get(), POLLIN | POLLERR, 0}, {wake_fd_.get(), POLLIN, 0}};
  while (!stopping_) {
    if (process_ready_blocks()) continue;
    // While the controller holds a block the socket polls readable (TPACKET_V3 reports the
    // block before the kernel's current one), so poll would spin: wait for a block to come
    // back instead (the controller reads batches one after the other, so the next one is
    // only needed then), or a few ms for the kernel to retire another.
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (lent_count_ > 0 && !stopping_) {
        if (lent_[next_block_]) stats_.stalls++;
        uint32_t lent = lent_count_;
        room_.wait_for(lock, std::chrono::milliseconds(5), [&] { return lent_count_ < lent || stopping_; });
        continue;
      }
    }
    poll(fds, 2, 100);
  }
  // Stopping: packets the kernel has put in the block it is still filling come out when it
  // retires that block (within retire_ms). Waited for only when there are some: the kernel's
  // count of packets placed in the ring says whether every one has been handed over.
  for (int rounds = 0; rounds < 100; rounds++) {
    process_ready_blocks();
    read_kernel_stats();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (placed_ <= handed_) break;
    }
    usleep(5000);
  }
}
