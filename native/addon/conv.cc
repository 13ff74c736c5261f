// oneDNN (Debian's libdnnl, the library PyTorch's CPU convolutions run on) for the three
// convolution kernels of the tfjs wasm backend, computed natively and in place on the wasm
// heap: tfjs tensors stay where they are, only the arithmetic moves to oneDNN's JIT code (AVX2 or AVX-512).
//
// JS passes the heap (a Uint8Array over the wasm memory), byte offsets of the three tensors
// and the conv geometry; tensors are NHWC (activations) and HWIO (filters), tfjs' layouts.
// Primitives are created once per geometry and cached: creation costs milliseconds.
// Activations stay NHWC where oneDNN has direct kernels for it (see Layout below).
#include <oneapi/dnnl/dnnl.hpp>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"

using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

enum Kind { FORWARD = 0, BACKWARD_DATA = 1, BACKWARD_WEIGHTS = 2 };
// dims: B H W ci FH FW co OH OW sh sw pt pl pb pr
constexpr int NDIMS = 15;

struct Geometry {
  int kind;
  std::vector<int64_t> d;
  bool operator<(const Geometry& o) const { return kind != o.kind ? kind < o.kind : d < o.d; }
};

// The three tensors of a call are a, b, c: (x, w, y) forward, (dy, w, dx) backward data,
// (x, dy, dw) backward weights. User-side layouts are plain; the primitive may prefer blocked
// layouts, then reorders (with buffers owned here) bracket it.
struct Plan {
  dnnl::primitive prim;
  int argA, argB, argC;
  memory::desc userA, userB, userC;
  memory::desc primA, primB, primC;
  // user -> blocked for a and b, blocked -> user for c; empty when the layouts already agree.
  // Created once: building a reorder primitive per call cost more than the reorder itself.
  dnnl::primitive toA, toB, fromC;
  bool hasA = false, hasB = false, hasC = false;
  std::string impl;
};

void addReorders(Plan& p) {
  auto& e = engine();
  if ((p.hasA = p.primA != p.userA)) p.toA = dnnl::reorder(dnnl::reorder::primitive_desc(e, p.userA, e, p.primA));
  if ((p.hasB = p.primB != p.userB)) p.toB = dnnl::reorder(dnnl::reorder::primitive_desc(e, p.userB, e, p.primB));
  if ((p.hasC = p.primC != p.userC)) p.fromC = dnnl::reorder(dnnl::reorder::primitive_desc(e, p.primC, e, p.userC));
}

std::map<Geometry, std::unique_ptr<Plan>> plans;

// Activation layouts. oneDNN's AVX-512 kernels (`brgconv`, `jit:avx512_core` with nxc) read and
// write channels-last (NHWC, tfjs' own layout) directly: then no activation is reordered at all.
// Every other NHWC primitive is replaced by the blocked layouts oneDNN prefers (tag::any),
// bracketed by reorders:
// - GEMM or reference code (most NHWC geometries on AVX2): 1.5-2.5x slower even counting the
//   reorders (measured).
// - oneDNN 2.6.3's AVX2 NHWC kernels are not memory-safe: jit_1x1:avx2 backward_weights with
//   stride 2 and an output channel count that is not a multiple of 16 (e.g. 4 -> 8, ResNet-8
//   width 4's shortcut) writes 8 bytes past a buffer it allocates itself at primitive creation
//   (valgrind: "Invalid write of size 8 ... 0 bytes after a block of size 3,264 alloc'd" in
//   dnnl_primitive_create). That heap corruption aborted runs on AVX2 machines and made 2-thread
//   runs nondeterministic (issue 27). Only AVX-512 NHWC kernels are trusted; the blocked AVX2
//   kernels are clean under valgrind at every shape scripts/native-memcheck.mjs tries.
// BNLAB_CONV_LAYOUT=blocked|nhwc forces one (benchmarks, tests); unset = auto. Forced nhwc still
// takes the blocked layouts where the NHWC kernel is an untrusted (non-AVX-512) JIT kernel.
enum Layout { AUTO, BLOCKED, NHWC };
Layout layoutPolicy() {
  static const Layout l = [] {
    const char* v = std::getenv("BNLAB_CONV_LAYOUT");
    if (!v || !*v || !std::strcmp(v, "auto")) return AUTO;
    return std::strcmp(v, "nhwc") ? BLOCKED : NHWC;
  }();
  return l;
}

std::unique_ptr<Plan> makePlanIn(const Geometry& g, bool channelsLast) {
  const auto& d = g.d;
  const int64_t B = d[0], H = d[1], W = d[2], ci = d[3], FH = d[4], FW = d[5], co = d[6], OH = d[7], OW = d[8];
  const memory::dims strides = {d[9], d[10]}, padL = {d[11], d[12]}, padR = {d[13], d[14]};
  const auto f32 = memory::data_type::f32;
  memory::desc x({B, ci, H, W}, f32, tag::nhwc), w({co, ci, FH, FW}, f32, tag::hwio), y({B, co, OH, OW}, f32, tag::nhwc);
  // weights always tag::any: small, and reordered once per call at most
  const auto act = channelsLast ? tag::nhwc : tag::any;
  memory::desc xa({B, ci, H, W}, f32, act), wa({co, ci, FH, FW}, f32, tag::any), ya({B, co, OH, OW}, f32, act);
  const auto algo = dnnl::algorithm::convolution_direct;
  auto& e = engine();
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, algo, xa, wa, ya, strides, padL, padR);
  dnnl::convolution_forward::primitive_desc fpd(fd, e);

  auto p = std::make_unique<Plan>();
  if (g.kind == FORWARD) {
    p->prim = dnnl::convolution_forward(fpd);
    p->argA = DNNL_ARG_SRC, p->argB = DNNL_ARG_WEIGHTS, p->argC = DNNL_ARG_DST;
    p->userA = x, p->userB = w, p->userC = y;
    p->primA = fpd.src_desc(), p->primB = fpd.weights_desc(), p->primC = fpd.dst_desc();
    p->impl = fpd.impl_info_str();
  } else if (g.kind == BACKWARD_DATA) {
    dnnl::convolution_backward_data::desc bd(algo, xa, wa, ya, strides, padL, padR);
    dnnl::convolution_backward_data::primitive_desc bpd(bd, e, fpd);
    p->prim = dnnl::convolution_backward_data(bpd);
    p->argA = DNNL_ARG_DIFF_DST, p->argB = DNNL_ARG_WEIGHTS, p->argC = DNNL_ARG_DIFF_SRC;
    p->userA = y, p->userB = w, p->userC = x;
    p->primA = bpd.diff_dst_desc(), p->primB = bpd.weights_desc(), p->primC = bpd.diff_src_desc();
    p->impl = bpd.impl_info_str();
  } else {
    dnnl::convolution_backward_weights::desc bd(algo, xa, wa, ya, strides, padL, padR);
    dnnl::convolution_backward_weights::primitive_desc bpd(bd, e, fpd);
    p->prim = dnnl::convolution_backward_weights(bpd);
    p->argA = DNNL_ARG_SRC, p->argB = DNNL_ARG_DIFF_DST, p->argC = DNNL_ARG_DIFF_WEIGHTS;
    p->userA = x, p->userB = y, p->userC = w;
    p->primA = bpd.src_desc(), p->primB = bpd.diff_dst_desc(), p->primC = bpd.diff_weights_desc();
    p->impl = bpd.impl_info_str();
  }
  p->impl += channelsLast ? " nhwc" : " blocked";
  addReorders(*p);
  return p;
}

std::unique_ptr<Plan> makePlan(const Geometry& g) {
  const Layout l = layoutPolicy();
  if (l == BLOCKED) return makePlanIn(g, false);
  auto p = makePlanIn(g, true);
  const std::string& impl = p->impl;
  const bool avx512 = impl.find("avx512") != std::string::npos;
  const bool jit = impl.rfind("jit", 0) == 0 || impl.rfind("brg", 0) == 0;
  // auto: NHWC only for AVX-512 kernels; forced nhwc: also GEMM and reference code, never an
  // untrusted JIT kernel (see Layout above)
  const bool keep = avx512 || (l == NHWC && !jit);
  return keep ? std::move(p) : makePlanIn(g, false);
}

Plan& planFor(const Geometry& g) {
  auto it = plans.find(g);
  if (it == plans.end()) it = plans.emplace(g, makePlan(g)).first;
  return *it->second;
}

// Scratch for the blocked copies, one growing buffer per operand slot, reused by every call
// (calls come one at a time from the JS thread): fresh allocations per call cost page faults.
struct Arena {
  void* p = nullptr;
  size_t size = 0;
  void* get(size_t n) {
    if (n > size) {
      free(p);
      size = (n + 4095) & ~size_t(4095);
      p = aligned_alloc(4096, size);
      if (!p) throw std::bad_alloc();
    }
    return p;
  }
};
Arena arenas[3];

// The blocked copy of the last dy reordered by a gradient kernel. Both gradients of a conv
// take the same dy, one after the other, and usually want it in the same blocked layout: the
// second call reuses the copy. `token` names the tensor (JS numbers each tfjs data buffer
// once and never reuses a number; tensors are immutable), so a match means the same bytes.
struct DyCopy {
  double token = 0;
  memory::desc desc;
  Arena buf;
} lastDy;

// Runs one conv; blocked layouts get reorders in and out. dyToken > 0 names the dy operand
// (A for backward data, B for backward weights).
void run(Plan& p, int kind, char* heap, size_t offA, size_t offB, size_t offC, double dyToken) {
  auto& e = engine();
  auto& s = stream();
  memory ua(p.userA, e, heap + offA), ub(p.userB, e, heap + offB), uc(p.userC, e, heap + offC);
  // operand slot -> blocked memory, reordered from the user's unless the dy copy is reusable
  auto in = [&](memory& u, bool has, const memory::desc& want, const dnnl::primitive& reorder, int slot) {
    if (!has) return u;
    const bool isDy = dyToken > 0 && ((kind == BACKWARD_DATA && slot == 0) || (kind == BACKWARD_WEIGHTS && slot == 1));
    if (isDy && lastDy.token == dyToken && lastDy.desc == want) return memory(want, e, lastDy.buf.get(want.get_size()));
    memory m(want, e, (isDy ? lastDy.buf : arenas[slot]).get(want.get_size()));
    reorder.execute(s, {{DNNL_ARG_FROM, u}, {DNNL_ARG_TO, m}});
    if (isDy) lastDy.token = dyToken, lastDy.desc = want;
    return m;
  };
  memory a = in(ua, p.hasA, p.primA, p.toA, 0), b = in(ub, p.hasB, p.primB, p.toB, 1);
  memory c = p.hasC ? memory(p.primC, e, arenas[2].get(p.primC.get_size())) : uc;
  p.prim.execute(s, {{p.argA, a}, {p.argB, b}, {p.argC, c}});
  if (p.hasC) p.fromC.execute(s, {{DNNL_ARG_FROM, c}, {DNNL_ARG_TO, uc}});
  s.wait();
}

}  // namespace

// ---- N-API ----
// The conv kind (argument kindAt) and the 15 geometry numbers (an Int32Array at dimsAt).
static bool geometryArg(Args& a, size_t kindAt, size_t dimsAt, Geometry& g) {
  g.kind = int(a.num(kindAt));
  void* data;
  size_t len;
  napi_typedarray_type type;
  if (!a.ok || g.kind < 0 || g.kind > 2 ||
      napi_get_typedarray_info(a.env, a.v[dimsAt], &type, &len, &data, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array || len != NDIMS) {
    a.fail("conv: bad kind or dims");
    return false;
  }
  const int32_t* d = static_cast<const int32_t*>(data);
  g.d.assign(d, d + NDIMS);
  return true;
}

// conv(kind, heap, offA, offB, offC, dims Int32Array(15), dyToken)
napi_value Conv(napi_env env, napi_callback_info info) {
  Args a(env, info, 7);
  if (!a.ok) return nullptr;
  Geometry g;
  char* heap = a.heap(1);
  if (!a.ok || !geometryArg(a, 0, 5, g)) return nullptr;
  try {
    run(planFor(g), g.kind, heap, size_t(a.num(2)), size_t(a.num(3)), size_t(a.num(4)), a.num(6));
  } catch (const std::exception& e) {
    a.fail((std::string("oneDNN: ") + e.what()).c_str());
  }
  return nullptr;
}

// impl(kind, dims): the oneDNN implementation chosen for a geometry and its activation layout,
// e.g. "brgconv:avx512_core nhwc" (for tests and bench).
napi_value ConvImpl(napi_env env, napi_callback_info info) {
  Args a(env, info, 2);
  if (!a.ok) return nullptr;
  Geometry g;
  if (!geometryArg(a, 0, 1, g)) return nullptr;
  try {
    const std::string& s = planFor(g).impl;
    napi_value out;
    napi_create_string_utf8(env, s.c_str(), s.size(), &out);
    return out;
  } catch (const std::exception& e) {
    a.fail((std::string("oneDNN: ") + e.what()).c_str());
    return nullptr;
  }
}
