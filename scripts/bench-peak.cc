// Sustained fp32 peak of this machine's cores through oneDNN (the library bnlab's convolutions
// and PyTorch's run on): a large sgemm and large 3x3 convolutions (blocked layouts chosen by
// oneDNN, as bnlab's conv.cc does), plus ResNet-20's own conv geometries for comparison.
// Each case runs repeatedly for ~--seconds; prints the median and best GFLOP/s of the repeats.
// Build and run with scripts/bench-peak.sh (1 and 2 OpenMP threads; ONEDNN_VERBOSE for the ISA).
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

using dnnl::memory;
using tag = memory::format_tag;
using clk = std::chrono::steady_clock;

static double seconds = 3.0;

// Runs f until ~seconds have passed (after 2 warm-up calls); GFLOP/s per call: median, best.
static void timeit(const char* name, double flops, const std::function<void()>& f) {
  f();
  f();
  std::vector<double> g;
  const auto t0 = clk::now();
  while (std::chrono::duration<double>(clk::now() - t0).count() < seconds || g.size() < 3) {
    const auto a = clk::now();
    f();
    g.push_back(flops / std::chrono::duration<double>(clk::now() - a).count() / 1e9);
  }
  std::sort(g.begin(), g.end());
  std::printf("%-48s threads %d  median %7.1f GFLOP/s  best %7.1f  (%zu calls)\n", name, omp_get_max_threads(),
              g[g.size() / 2], g.back(), g.size());
  std::fflush(stdout);
}

static void sgemm(int n) {
  std::vector<float> A(size_t(n) * n, 0.5f), B(size_t(n) * n, 0.25f), C(size_t(n) * n);
  char name[64];
  std::snprintf(name, sizeof name, "dnnl_sgemm %dx%dx%d", n, n, n);
  timeit(name, 2.0 * n * n * n, [&] {
    if (dnnl_sgemm('N', 'N', n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n) != dnnl_success) std::abort();
  });
}

// prop: 0 forward_training, 1 backward_data, 2 backward_weights. stride 1, pad 1, 3x3.
static void conv(dnnl::engine& e, dnnl::stream& s, int prop, int N, int C, int K, int HW) {
  const auto f32 = memory::data_type::f32;
  const memory::dims strides = {1, 1}, pad = {1, 1};
  memory::desc x({N, C, HW, HW}, f32, tag::any), w({K, C, 3, 3}, f32, tag::any), y({N, K, HW, HW}, f32, tag::any);
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, algo, x, w, y, strides, pad, pad);
  dnnl::convolution_forward::primitive_desc fpd(fd, e);
  dnnl::primitive p;
  std::unordered_map<int, memory> args;
  auto mem = [&](const memory::desc& d) {
    memory m(d, e);
    std::memset(m.get_data_handle(), 0, d.get_size());
    return m;
  };
  const char* what = "fwd";
  std::string impl;
  if (prop == 0) {
    p = dnnl::convolution_forward(fpd);
    args = {{DNNL_ARG_SRC, mem(fpd.src_desc())}, {DNNL_ARG_WEIGHTS, mem(fpd.weights_desc())}, {DNNL_ARG_DST, mem(fpd.dst_desc())}};
    impl = fpd.impl_info_str();
  } else if (prop == 1) {
    what = "bwd-data";
    dnnl::convolution_backward_data::desc bd(algo, x, w, y, strides, pad, pad);
    dnnl::convolution_backward_data::primitive_desc bpd(bd, e, fpd);
    p = dnnl::convolution_backward_data(bpd);
    args = {{DNNL_ARG_DIFF_SRC, mem(bpd.diff_src_desc())}, {DNNL_ARG_WEIGHTS, mem(bpd.weights_desc())}, {DNNL_ARG_DIFF_DST, mem(bpd.diff_dst_desc())}};
    impl = bpd.impl_info_str();
  } else {
    what = "bwd-weights";
    dnnl::convolution_backward_weights::desc bd(algo, x, w, y, strides, pad, pad);
    dnnl::convolution_backward_weights::primitive_desc bpd(bd, e, fpd);
    p = dnnl::convolution_backward_weights(bpd);
    args = {{DNNL_ARG_SRC, mem(bpd.src_desc())}, {DNNL_ARG_DIFF_WEIGHTS, mem(bpd.diff_weights_desc())}, {DNNL_ARG_DIFF_DST, mem(bpd.diff_dst_desc())}};
    impl = bpd.impl_info_str();
  }
  char name[128];
  std::snprintf(name, sizeof name, "conv3x3 %s N%d C%d K%d %dx%d [%s]", what, N, C, K, HW, HW, impl.c_str());
  timeit(name, 2.0 * N * K * HW * HW * C * 9, [&] {
    p.execute(s, args);
    s.wait();
  });
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++)
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
  dnnl::engine e(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(e);
  sgemm(2048);
  sgemm(4096);
  // large conv: a ResNet-50 stage-3-like layer, 256 channels in and out
  for (int prop = 0; prop < 3; prop++) conv(e, s, prop, 64, 256, 256, 28);
  // ResNet-20 b128's own 3x3 layers (16, 32, 64 channels at 32, 16, 8 pixels)
  const int r20[3][2] = {{16, 32}, {32, 16}, {64, 8}};
  for (auto& l : r20)
    for (int prop = 0; prop < 3; prop++) conv(e, s, prop, 128, l[0], l[0], l[1]);
  return 0;
}
