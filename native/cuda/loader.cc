// Loads the CUDA driver, NVRTC, cuBLAS and cuDNN 9 by the paths init() was given and resolves every
// entry point api.h declares. Nothing is linked at build time, so a machine without a GPU builds
// and loads the addon; what is missing shows up here, named, with the fix.
#include <dlfcn.h>
#include <unistd.h>

#include "addon.h"

Libs lib;

namespace {

struct Library {
  const char* option;  // init()'s option naming the path
  const char* what;
  const char* fix;
};
const Library DRIVER = {"driver", "the CUDA driver (libcuda.so.1)",
                        "install the NVIDIA driver and pass its libcuda.so.1 "
                        "(`ldconfig -p | grep libcuda.so.1` shows where, e.g. /usr/lib/x86_64-linux-gnu/libcuda.so.1)"};
const Library NVRTC = {"nvrtc", "NVRTC, CUDA's runtime compiler (libnvrtc.so.12 or .13)",
                       "install it (apt: cuda-nvrtc-12-x or -13-x; pip: nvidia-cuda-nvrtc-cu12) and pass the path "
                       "of its libnvrtc.so.12 / .13; libnvrtc-builtins must sit next to it"};
const Library CUBLAS = {"cublas", "cuBLAS (libcublas.so.12 or .13)",
                        "install it (apt: libcublas-12-x or -13-x; pip: nvidia-cublas-cu12) and pass the path of "
                        "its libcublas.so.12 / .13 (libcublasLt from the same release must be loadable next to it)"};
const Library CUDNN = {"cudnn", "cuDNN 9 (libcudnn.so.9)",
                       "install cuDNN 9 for your CUDA major version (apt: libcudnn9-cuda-12 / -13; pip: "
                       "nvidia-cudnn-cu12) and pass the path of its libcudnn.so.9"};

void* open(const Library& l, const std::string& path) {
  if (path.empty()) fail(std::string("bnlab cuda: init option '") + l.option + "' is empty. Fix: " + l.fix);
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h)
    fail(std::string("bnlab cuda: cannot load ") + l.what + " from '" + path + "' (init option '" + l.option +
         "'): " + dlerror() + ". Fix: " + l.fix);
  return h;
}

template <typename Fn>
void resolve(void* h, const Library& l, const std::string& path, const char* name, Fn& fn) {
  void* sym = dlsym(h, name);
  if (!sym) {
    dlclose(h);
    fail(std::string("bnlab cuda: '") + path + "' (init option '" + l.option + "') has no symbol " + name +
         ": it is not " + l.what + ", or a release older than bnlab needs. Fix: " + l.fix);
  }
  fn = reinterpret_cast<Fn>(sym);
}

// cuDNN 9's libcudnn.so.9 dispatches to sub-libraries that it dlopen()s by bare soname, which
// finds them only on the loader's search path. Loading the ones the convolutions need from the
// given file's own folder first makes those lookups find them there (a pip or tarball install).
void preloadCudnnParts(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return;  // a bare soname: the search path serves the parts too
  const std::string dir = path.substr(0, slash + 1);
  for (const char* part : {"graph", "engines_precompiled", "heuristic", "ops", "cnn"}) {
    const std::string file = dir + "libcudnn_" + part + ".so.9";
    if (access(file.c_str(), F_OK) != 0) continue;
    if (!dlopen(file.c_str(), RTLD_LAZY | RTLD_GLOBAL))
      fail("bnlab cuda: cannot load cuDNN's part " + file + ": " + dlerror() + ". Fix: " + CUDNN.fix);
  }
}

}  // namespace

void loadLibraries(const LibPaths& p) {
  Libs next;
  void* h = open(DRIVER, p.driver);
#define BNLAB_RESOLVE(name, ret, params) resolve(h, DRIVER, p.driver, #name, next.cu.name);
  BNLAB_DRIVER_API(BNLAB_RESOLVE)
#undef BNLAB_RESOLVE
  h = open(NVRTC, p.nvrtc);
#define BNLAB_RESOLVE(name, ret, params) resolve(h, NVRTC, p.nvrtc, #name, next.rtc.name);
  BNLAB_NVRTC_API(BNLAB_RESOLVE)
#undef BNLAB_RESOLVE
  h = open(CUBLAS, p.cublas);
#define BNLAB_RESOLVE(name, ret, params) resolve(h, CUBLAS, p.cublas, #name, next.blas.name);
  BNLAB_CUBLAS_API(BNLAB_RESOLVE)
#undef BNLAB_RESOLVE
  preloadCudnnParts(p.cudnn);
  h = open(CUDNN, p.cudnn);
#define BNLAB_RESOLVE(name, ret, params) resolve(h, CUDNN, p.cudnn, #name, next.dnn.name);
  BNLAB_CUDNN_API(BNLAB_RESOLVE)
#undef BNLAB_RESOLVE
  // Major versions change ABIs: api.h follows cuDNN 9's documentation. 8.x reports major*1000+...,
  // 9.x major*10000+...
  const size_t v = next.dnn.cudnnGetVersion();
  const size_t major = v >= 10000 ? v / 10000 : v / 1000;
  if (major != 9)
    fail("bnlab cuda: '" + p.cudnn + "' is cuDNN " + std::to_string(major) + " (version " + std::to_string(v) +
         "); bnlab's convolutions are written against cuDNN 9. Fix: " + CUDNN.fix);
  next.driverPath = p.driver;
  next.nvrtcPath = p.nvrtc;
  next.cublasPath = p.cublas;
  next.cudnnPath = p.cudnn;
  lib = next;
}
