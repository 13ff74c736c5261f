// Device memory from the default stream-ordered pool (a freed buffer is reused by the next
// allocation on the stream at once, with no synchronisation), and the host <-> device copies
// through pinned staging: an upload returns as soon as its bytes are staged, so the caller may
// reuse its array; a download waits for the stream.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "addon.h"

namespace {

constexpr size_t STAGING_MIN = size_t(4) << 20, STAGING_MAX = size_t(64) << 20;

size_t stagingSize(size_t want) {
  size_t s = STAGING_MIN;
  while (s < want && s < STAGING_MAX) s *= 2;
  return s;
}

// Waits until no pending upload still reads [begin, end) of the ring. Copies run in stream order,
// so the newest overlapping region's event covers every older region too.
void waitForRegions(Staging& s, size_t begin, size_t end) {
  size_t last = s.pending.size();
  for (size_t i = 0; i < s.pending.size(); i++)
    if (s.pending[i].begin < end && begin < s.pending[i].end) last = i;
  if (last == s.pending.size()) return;
  check(lib.cu.cuEventSynchronize(s.pending[last].done), "cuEventSynchronize");
  for (size_t i = 0; i <= last; i++) s.spare.push_back(s.pending[i].done);
  s.pending.erase(s.pending.begin(), s.pending.begin() + std::ptrdiff_t(last) + 1);
}

void growRing(Staging& s, size_t bytes) {
  waitForRegions(s, 0, s.cap);
  if (s.base) check(lib.cu.cuMemFreeHost(s.base), "cuMemFreeHost");
  s.base = nullptr;
  s.cap = s.head = 0;
  void* p = nullptr;
  check(lib.cu.cuMemAllocHost_v2(&p, bytes), "cuMemAllocHost");
  s.base = static_cast<char*>(p);
  s.cap = bytes;
}

// What an Int32Array stores for a number (JS ToInt32): truncated, modulo 2^32; NaN and infinities 0.
unsigned toInt32Bits(double v) {
  if (!std::isfinite(v)) return 0;
  double t = std::fmod(std::trunc(v), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return unsigned(t);
}

// Host copies address a buffer from its start (device.ts); one past its end would corrupt another.
void checkBuffer(const char* op, CUdeviceptr buf, size_t bytes) {
  const auto it = device().live.find(buf);
  if (it == device().live.end() || bytes > it->second)
    fail(std::string("bnlab cuda: ") + op + ": " + std::to_string(bytes) + " bytes at " + std::to_string(buf) +
         (it == device().live.end() ? ", which is not a live buffer"
                                    : " exceed the buffer's " + std::to_string(it->second)));
}

}  // namespace

size_t dtypeBytes(DType t) { return t == BOOL ? 1 : 4; }

Scratch::Scratch(size_t bytes) {
  check(lib.cu.cuMemAllocAsync(&ptr, bytes ? bytes : 1, device().stream), "cuMemAllocAsync");
}
Scratch::~Scratch() {
  // A failing free means the context is already broken; the next checked call reports it.
  lib.cu.cuMemFreeAsync(ptr, device().stream);
}

namespace ops {

CUdeviceptr alloc(size_t bytes) {
  Device& d = device();
  CUdeviceptr p = 0;
  check(lib.cu.cuMemAllocAsync(&p, bytes ? bytes : 1, d.stream), "cuMemAllocAsync",
        "free tensors, or lower the batch size");
  d.live[p] = bytes;
  d.inUse += bytes;
  return p;
}

void release(CUdeviceptr buf) {
  Device& d = device();
  const auto it = d.live.find(buf);
  if (it == d.live.end()) fail("bnlab cuda: free(" + std::to_string(buf) + "): not a live buffer (freed twice?)");
  check(lib.cu.cuMemFreeAsync(buf, d.stream), "cuMemFreeAsync");
  d.inUse -= it->second;
  d.live.erase(it);
}

}  // namespace ops

// Ring of pinned memory: twice the largest chunk so a chunk seldom waits for the one before it.
void uploadTo(CUdeviceptr dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Device& d = device();
  Staging& s = d.up;
  const size_t want = stagingSize(2 * std::min(bytes, STAGING_MAX / 2));
  if (s.cap < want) growRing(s, want);
  const char* from = static_cast<const char*>(src);
  for (size_t off = 0; off < bytes;) {
    const size_t n = std::min(bytes - off, s.cap / 2);
    const size_t start = s.head + n <= s.cap ? s.head : 0;
    waitForRegions(s, start, start + n);
    CUevent done = nullptr;
    if (s.spare.empty()) {
      check(lib.cu.cuEventCreate(&done, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    } else {
      done = s.spare.back();
      s.spare.pop_back();
    }
    std::memcpy(s.base + start, from + off, n);
    check(lib.cu.cuMemcpyHtoDAsync_v2(dst + off, s.base + start, n, d.stream), "cuMemcpyHtoDAsync");
    s.pending.push_back({start, start + n, done});
    check(lib.cu.cuEventRecord(done, d.stream), "cuEventRecord");
    s.head = start + n;
    off += n;
  }
}

namespace ops {

void upload(CUdeviceptr buf, const void* src, size_t bytes) {
  checkBuffer("upload", buf, bytes);
  uploadTo(buf, src, bytes);
}

void download(CUdeviceptr buf, void* dst, size_t bytes) {
  checkBuffer("download", buf, bytes);
  Device& d = device();
  const size_t want = stagingSize(bytes);
  if (bytes && d.downCap < want) {
    if (d.down) check(lib.cu.cuMemFreeHost(d.down), "cuMemFreeHost");  // idle: every download waits
    d.down = nullptr;
    d.downCap = 0;
    void* p = nullptr;
    check(lib.cu.cuMemAllocHost_v2(&p, want), "cuMemAllocHost");
    d.down = static_cast<char*>(p);
    d.downCap = want;
  }
  char* to = static_cast<char*>(dst);
  for (size_t off = 0; off < bytes;) {
    const size_t n = std::min(bytes - off, d.downCap);
    check(lib.cu.cuMemcpyDtoHAsync_v2(d.down, buf + off, n, d.stream), "cuMemcpyDtoHAsync");
    check(lib.cu.cuStreamSynchronize(d.stream), "cuStreamSynchronize (download)");
    std::memcpy(to + off, d.down, n);
    off += n;
  }
  if (!bytes) check(lib.cu.cuStreamSynchronize(d.stream), "cuStreamSynchronize (download)");
}

void copy(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  if (bytes) check(lib.cu.cuMemcpyDtoDAsync_v2(dst, src, bytes, device().stream), "cuMemcpyDtoDAsync");
}

void fill(CUdeviceptr buf, size_t n, DType t, double value) {
  if (!n) return;
  Device& d = device();
  if (t == BOOL) {
    check(lib.cu.cuMemsetD8Async(buf, value != 0 ? 1 : 0, n, d.stream), "cuMemsetD8Async");
    return;
  }
  unsigned bits = 0;
  if (t == F32) {
    const float f = float(value);
    std::memcpy(&bits, &f, 4);
  } else {
    bits = toInt32Bits(value);
  }
  check(lib.cu.cuMemsetD32Async(buf, bits, n, d.stream), "cuMemsetD32Async");
}

void sync() { check(lib.cu.cuStreamSynchronize(device().stream), "cuStreamSynchronize"); }

// pooled: what the pool holds beyond the allocations it serves (bnlab's buffers and its own
// scratch and cuDNN workspace), i.e. what the next allocations can reuse without the driver.
Memory memory() {
  Device& d = device();
  Memory m{d.inUse, 0, 0, 0};
  check(lib.cu.cuMemGetInfo_v2(&m.free, &m.total), "cuMemGetInfo");
  cuuint64_t reserved = 0, used = 0;
  check(lib.cu.cuMemPoolGetAttribute(d.pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved),
        "cuMemPoolGetAttribute");
  check(lib.cu.cuMemPoolGetAttribute(d.pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used), "cuMemPoolGetAttribute");
  m.pooled = reserved > used ? size_t(reserved - used) : 0;
  return m;
}

}  // namespace ops
