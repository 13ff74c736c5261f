// init(): the libraries, then one context on one GPU with one stream, cuBLAS and cuDNN on that
// stream, and bnlab's kernels compiled by NVRTC for this GPU's own architecture (CUBINs cached on
// disk: NVRTC takes seconds per file, loading a CUBIN milliseconds). Also the error checks.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "addon.h"

const char* const kernelNames[K_COUNT] = {
#define BNLAB_KERNEL_NAME(name) #name,
    BNLAB_KERNELS(BNLAB_KERNEL_NAME)
#undef BNLAB_KERNEL_NAME
};

void fail(const std::string& message) { throw std::runtime_error(message); }

void check(CUresult r, const char* call, const char* fix) {
  if (r == CUDA_SUCCESS) return;
  const char *name = nullptr, *text = nullptr;
  lib.cu.cuGetErrorName(r, &name);
  lib.cu.cuGetErrorString(r, &text);
  fail(std::string("bnlab cuda: ") + call + " failed: " + (name ? name : "CUDA error " + std::to_string(r)) +
       (text ? std::string(" (") + text + ")" : "") + (fix ? std::string(". Fix: ") + fix : ""));
}
void check(nvrtcResult r, const char* call) {
  if (r != NVRTC_SUCCESS) fail(std::string("bnlab cuda: ") + call + " failed: " + lib.rtc.nvrtcGetErrorString(r));
}
void check(cublasStatus_t r, const char* call) {
  if (r != CUBLAS_STATUS_SUCCESS)
    fail(std::string("bnlab cuda: ") + call + " failed: " + lib.blas.cublasGetStatusString(r));
}
void check(cudnnStatus_t r, const char* call) {
  if (r != CUDNN_STATUS_SUCCESS)
    fail(std::string("bnlab cuda: ") + call + " failed: " + lib.dnn.cudnnGetErrorString(r));
}

namespace {

// Never deleted: the driver tears the context down at exit, and destroying handles from a static
// destructor could run after it did.
Device* current = nullptr;

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("bnlab cuda: cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void writeAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + "." + std::to_string(getpid()) + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(data.data(), std::streamsize(data.size()));
    if (!f.flush()) fail("bnlab cuda: cannot write the kernel cache file " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail("bnlab cuda: cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

void makeDirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); i++) {
    if (i < dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      fail("bnlab cuda: cannot create the kernel cache folder " + part + ": " + std::strerror(errno) +
           ". Fix: pass a writable cacheDir");
  }
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<std::string> kernelFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) fail("bnlab cuda: cannot list the kernel folder " + dir + ": " + std::strerror(errno));
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".cu") == 0) files.push_back(n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("bnlab cuda: no .cu files in the kernel folder " + dir);
  return files;
}

struct Program {
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) lib.rtc.nvrtcDestroyProgram(&p);  // only on an error path, which is already being reported
  }
};

std::string compile(const std::string& path, const std::string& src, const std::vector<const char*>& options,
                    const std::string& arch, const std::string& nvrtcVersion) {
  Program prog;
  check(lib.rtc.nvrtcCreateProgram(&prog.p, src.c_str(), path.c_str(), 0, nullptr, nullptr), "nvrtcCreateProgram");
  const nvrtcResult r = lib.rtc.nvrtcCompileProgram(prog.p, int(options.size()), options.data());
  size_t logSize = 0;
  check(lib.rtc.nvrtcGetProgramLogSize(prog.p, &logSize), "nvrtcGetProgramLogSize");
  std::string log(logSize, '\0');
  if (logSize) check(lib.rtc.nvrtcGetProgramLog(prog.p, &log[0]), "nvrtcGetProgramLog");
  if (r != NVRTC_SUCCESS)
    fail("bnlab cuda: NVRTC " + nvrtcVersion + " could not compile " + path + " for " + arch + " (" +
         lib.rtc.nvrtcGetErrorString(r) + "):\n" + log.c_str() +
         "\n(if this GPU is newer than that NVRTC, pass the libnvrtc of a CUDA release that supports it)");
  size_t size = 0;
  check(lib.rtc.nvrtcGetCUBINSize(prog.p, &size), "nvrtcGetCUBINSize");
  std::string cubin(size, '\0');
  check(lib.rtc.nvrtcGetCUBIN(prog.p, &cubin[0]), "nvrtcGetCUBIN");
  // Taken from the guard first: nvrtc.h does not say that nvrtcDestroyProgram clears the handle,
  // and ~Program must not destroy it a second time.
  nvrtcProgram done = prog.p;
  prog.p = nullptr;
  check(lib.rtc.nvrtcDestroyProgram(&done), "nvrtcDestroyProgram");
  return cubin;
}

// One module per .cu file, from the cache when the same source, options, NVRTC and arch made it.
void loadKernels(Device& d, const std::string& dir, const std::string& cacheDir) {
  int major = 0, minor = 0;
  check(lib.rtc.nvrtcVersion(&major, &minor), "nvrtcVersion");
  const std::string nvrtcVersion = std::to_string(major) + "." + std::to_string(minor);
  const std::string arch = "sm_" + std::to_string(d.ccMajor) + std::to_string(d.ccMinor);
  const std::string archOption = "--gpu-architecture=" + arch;
  const std::vector<const char*> options = {archOption.c_str(), "-default-device", "--std=c++17"};
  makeDirs(cacheDir);
  for (const std::string& file : kernelFiles(dir)) {
    const std::string path = dir + "/" + file, src = readFile(path);
    uint64_t key = fnv1a(src);
    for (const char* o : options) key = fnv1a(std::string(o) + '\0', key);
    key = fnv1a(nvrtcVersion + '\0' + arch, key);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
    const std::string cached = cacheDir + "/" + file.substr(0, file.size() - 3) + "-" + arch + "-" + hex + ".cubin";
    CUmodule m = nullptr;
    if (access(cached.c_str(), R_OK) == 0) {
      const std::string cubin = readFile(cached);
      // A cached file the driver refuses (cut short by a full disk, say) is compiled again below.
      if (lib.cu.cuModuleLoadData(&m, cubin.data()) != CUDA_SUCCESS) m = nullptr;
    }
    if (!m) {
      const std::string cubin = compile(path, src, options, arch, nvrtcVersion);
      writeAtomically(cached, cubin);
      check(lib.cu.cuModuleLoadData(&m, cubin.data()), "cuModuleLoadData");
    }
    d.modules.push_back(m);
  }
  for (int k = 0; k < K_COUNT; k++) {
    for (CUmodule m : d.modules) {
      const CUresult r = lib.cu.cuModuleGetFunction(&d.fn[k], m, kernelNames[k]);
      if (r == CUDA_SUCCESS) break;
      if (r != CUDA_ERROR_NOT_FOUND) check(r, "cuModuleGetFunction");
    }
    if (!d.fn[k]) fail(std::string("bnlab cuda: no kernel ") + kernelNames[k] + " in " + dir + "/*.cu");
  }
}

// "580.95.05" from the kernel module's banner; the driver API only knows the CUDA version.
std::string kernelModuleVersion() {
  std::ifstream f("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(f, line)) return "";
  const size_t at = line.find("Kernel Module");
  if (at == std::string::npos) return "";
  std::istringstream rest(line.substr(at + 13));
  std::string v;
  rest >> v;
  return v;
}

std::string dotted(long long v, long long majorUnit) {
  return std::to_string(v / majorUnit) + "." + std::to_string(v % majorUnit / 100) + "." + std::to_string(v % 100);
}

void describeLibs(Device& d) {
  int driver = 0, nvMajor = 0, nvMinor = 0, blas = 0;
  check(lib.cu.cuDriverGetVersion(&driver), "cuDriverGetVersion");
  check(lib.rtc.nvrtcVersion(&nvMajor, &nvMinor), "nvrtcVersion");
  check(lib.blas.cublasGetVersion_v2(d.blas, &blas), "cublasGetVersion");
  const long long dnn = static_cast<long long>(lib.dnn.cudnnGetVersion());
  const std::string module = kernelModuleVersion();
  std::string cuda = "CUDA " + std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10);
  d.libs = {
      {"driver", (module.empty() ? cuda : module + " (" + cuda + ")") + " " + lib.driverPath},
      {"nvrtc", std::to_string(nvMajor) + "." + std::to_string(nvMinor) + " " + lib.nvrtcPath},
      // cuBLAS 11.0-11.6 counted majors in thousands, later releases in ten thousands
      {"cublas", dotted(blas, blas >= 100000 ? 10000 : 1000) + " " + lib.cublasPath},
      {"cudnn", dotted(dnn, 10000) + " " + lib.cudnnPath},
  };
}

int deviceOrdinal() {
  const char* v = std::getenv("BNLAB_CUDA_DEVICE");
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1024)
    fail(std::string("bnlab cuda: BNLAB_CUDA_DEVICE=") + v + " is not a device number. Fix: unset it or use 0, 1, ...");
  return int(n);
}

}  // namespace

Device::~Device() {
  // Only a failed init() destroys a Device; its first error is the one reported, so these
  // clean-up calls' own errors are not.
  if (dnn) lib.dnn.cudnnDestroy(dnn);
  if (blas) lib.blas.cublasDestroy_v2(blas);
  if (stream) lib.cu.cuStreamDestroy_v2(stream);
}

Device& device() {
  if (!current) fail("bnlab cuda: call init() first");
  return *current;
}

void initDevice(const InitOptions& o) {
  if (current) fail("bnlab cuda: init() was already called; one device per process");
  loadLibraries(o.libs);
  auto d = std::make_unique<Device>();
  d->tf32 = o.tf32;
  d->deterministic = o.deterministic;
  check(lib.cu.cuInit(0), "cuInit",
        "check that `nvidia-smi` sees a GPU, that the driver matches the kernel module, and that "
        "CUDA_VISIBLE_DEVICES does not hide every GPU");
  check(lib.cu.cuDeviceGet(&d->dev, deviceOrdinal()), "cuDeviceGet",
        "BNLAB_CUDA_DEVICE must name a visible GPU (numbered after CUDA_VISIBLE_DEVICES)");
  char name[256] = {};
  check(lib.cu.cuDeviceGetName(name, sizeof name - 1, d->dev), "cuDeviceGetName");
  d->name = name;
  check(lib.cu.cuDeviceGetAttribute(&d->ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->dev),
        "cuDeviceGetAttribute");
  check(lib.cu.cuDeviceGetAttribute(&d->ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->dev),
        "cuDeviceGetAttribute");
  check(lib.cu.cuDevicePrimaryCtxRetain(&d->ctx, d->dev), "cuDevicePrimaryCtxRetain");
  check(lib.cu.cuCtxSetCurrent(d->ctx), "cuCtxSetCurrent");
  size_t free = 0;
  check(lib.cu.cuMemGetInfo_v2(&free, &d->totalBytes), "cuMemGetInfo");
  // Blocking with respect to the legacy default stream, where library internals may still queue work.
  check(lib.cu.cuStreamCreate(&d->stream, CU_STREAM_DEFAULT), "cuStreamCreate");
  check(lib.cu.cuDeviceGetDefaultMemPool(&d->pool, d->dev), "cuDeviceGetDefaultMemPool");
  // Keep freed memory in the pool instead of returning it to the driver at every sync point:
  // tfjs frees and reallocates the same sizes every step.
  cuuint64_t keep = ~cuuint64_t(0);
  check(lib.cu.cuMemPoolSetAttribute(d->pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep), "cuMemPoolSetAttribute");
  check(lib.blas.cublasCreate_v2(&d->blas), "cublasCreate");
  check(lib.blas.cublasSetStream_v2(d->blas, d->stream), "cublasSetStream");
  check(lib.blas.cublasSetMathMode(d->blas, o.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
        "cublasSetMathMode");
  check(lib.dnn.cudnnCreate(&d->dnn), "cudnnCreate");
  check(lib.dnn.cudnnSetStream(d->dnn, d->stream), "cudnnSetStream");
  loadKernels(*d, o.kernelDir, o.cacheDir);
  describeLibs(*d);
  current = d.release();
}
