// The entry points bnlab's CUDA device layer uses from the CUDA driver, NVRTC, cuBLAS and cuDNN 9,
// declared here from NVIDIA's public documentation so that the addon builds with g++ alone: no
// CUDA headers or libraries at build time; each library is dlopen()ed at init() by the path the
// caller gives (loader.cc). Only what bnlab calls is declared; enum values are NVIDIA's.
// Each API list is an X-macro, X(name, return type, parameters): the same list declares the
// function pointers and drives the symbol lookup, so a name cannot be declared and never resolved.
#pragma once
#include <cstddef>

// ---- CUDA driver (libcuda.so.1, cuda.h) ----
enum CUresult : int { CUDA_SUCCESS = 0, CUDA_ERROR_NOT_FOUND = 500 };
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;
typedef struct CUctx_st* CUcontext;
typedef struct CUstream_st* CUstream;
typedef struct CUevent_st* CUevent;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUmemPoolHandle_st* CUmemoryPool;
enum CUdevice_attribute : int {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};
// values are cuuint64_t for all four
enum CUmemPool_attribute : int {
  CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4,
  CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT = 5,
  CU_MEMPOOL_ATTR_USED_MEM_CURRENT = 7,
};
enum : unsigned { CU_STREAM_DEFAULT = 0, CU_EVENT_DISABLE_TIMING = 2 };

#define BNLAB_DRIVER_API(X)                                                                                  \
  X(cuInit, CUresult, (unsigned flags))                                                                      \
  X(cuGetErrorName, CUresult, (CUresult error, const char** str))                                            \
  X(cuGetErrorString, CUresult, (CUresult error, const char** str))                                          \
  X(cuDriverGetVersion, CUresult, (int* version))                                                            \
  X(cuDeviceGet, CUresult, (CUdevice * device, int ordinal))                                                 \
  X(cuDeviceGetName, CUresult, (char* name, int len, CUdevice dev))                                          \
  X(cuDeviceGetAttribute, CUresult, (int* value, CUdevice_attribute attrib, CUdevice dev))                   \
  X(cuDevicePrimaryCtxRetain, CUresult, (CUcontext * pctx, CUdevice dev))                                    \
  X(cuCtxSetCurrent, CUresult, (CUcontext ctx))                                                              \
  X(cuMemGetInfo_v2, CUresult, (size_t * free, size_t* total))                                               \
  X(cuStreamCreate, CUresult, (CUstream * stream, unsigned flags))                                           \
  X(cuStreamDestroy_v2, CUresult, (CUstream stream))                                                         \
  X(cuStreamSynchronize, CUresult, (CUstream stream))                                                        \
  X(cuDeviceGetDefaultMemPool, CUresult, (CUmemoryPool * pool, CUdevice dev))                                \
  X(cuMemPoolSetAttribute, CUresult, (CUmemoryPool pool, CUmemPool_attribute attr, void* value))             \
  X(cuMemPoolGetAttribute, CUresult, (CUmemoryPool pool, CUmemPool_attribute attr, void* value))             \
  X(cuMemAllocAsync, CUresult, (CUdeviceptr * dptr, size_t bytes, CUstream stream))                          \
  X(cuMemFreeAsync, CUresult, (CUdeviceptr dptr, CUstream stream))                                           \
  X(cuMemAllocHost_v2, CUresult, (void** pp, size_t bytes))                                                  \
  X(cuMemFreeHost, CUresult, (void* p))                                                                      \
  X(cuMemcpyHtoDAsync_v2, CUresult, (CUdeviceptr dst, const void* src, size_t bytes, CUstream stream))       \
  X(cuMemcpyDtoHAsync_v2, CUresult, (void* dst, CUdeviceptr src, size_t bytes, CUstream stream))             \
  X(cuMemcpyDtoDAsync_v2, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream))       \
  X(cuMemsetD8Async, CUresult, (CUdeviceptr dst, unsigned char value, size_t n, CUstream stream))            \
  X(cuMemsetD32Async, CUresult, (CUdeviceptr dst, unsigned value, size_t n, CUstream stream))                \
  X(cuModuleLoadData, CUresult, (CUmodule * module, const void* image))                                      \
  X(cuModuleGetFunction, CUresult, (CUfunction * fn, CUmodule module, const char* name))                     \
  X(cuLaunchKernel, CUresult,                                                                                \
    (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,             \
     unsigned sharedBytes, CUstream stream, void** params, void** extra))                                    \
  X(cuEventCreate, CUresult, (CUevent * event, unsigned flags))                                              \
  X(cuEventRecord, CUresult, (CUevent event, CUstream stream))                                               \
  X(cuEventSynchronize, CUresult, (CUevent event))

// ---- NVRTC (libnvrtc.so, nvrtc.h) ----
enum nvrtcResult : int { NVRTC_SUCCESS = 0 };
typedef struct _nvrtcProgram* nvrtcProgram;

#define BNLAB_NVRTC_API(X)                                                                                  \
  X(nvrtcVersion, nvrtcResult, (int* major, int* minor))                                                    \
  X(nvrtcGetErrorString, const char*, (nvrtcResult result))                                                 \
  X(nvrtcCreateProgram, nvrtcResult,                                                                        \
    (nvrtcProgram * prog, const char* src, const char* name, int numHeaders, const char* const* headers,    \
     const char* const* includeNames))                                                                      \
  X(nvrtcCompileProgram, nvrtcResult, (nvrtcProgram prog, int numOptions, const char* const* options))      \
  X(nvrtcGetProgramLogSize, nvrtcResult, (nvrtcProgram prog, size_t * size))                                \
  X(nvrtcGetProgramLog, nvrtcResult, (nvrtcProgram prog, char* log))                                        \
  X(nvrtcGetCUBINSize, nvrtcResult, (nvrtcProgram prog, size_t * size))                                     \
  X(nvrtcGetCUBIN, nvrtcResult, (nvrtcProgram prog, char* cubin))                                           \
  X(nvrtcDestroyProgram, nvrtcResult, (nvrtcProgram * prog))

// ---- cuBLAS (libcublas.so, cublas_api.h) ----
enum cublasStatus_t : int { CUBLAS_STATUS_SUCCESS = 0 };
typedef struct cublasContext* cublasHandle_t;
enum cublasOperation_t : int { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t : int { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };

#define BNLAB_CUBLAS_API(X)                                                                                 \
  X(cublasCreate_v2, cublasStatus_t, (cublasHandle_t * handle))                                             \
  X(cublasDestroy_v2, cublasStatus_t, (cublasHandle_t handle))                                              \
  X(cublasGetVersion_v2, cublasStatus_t, (cublasHandle_t handle, int* version))                             \
  X(cublasGetStatusString, const char*, (cublasStatus_t status))                                            \
  X(cublasSetStream_v2, cublasStatus_t, (cublasHandle_t handle, CUstream stream))                           \
  X(cublasSetMathMode, cublasStatus_t, (cublasHandle_t handle, cublasMath_t mode))                          \
  X(cublasSgemmStridedBatched, cublasStatus_t,                                                              \
    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,       \
     const float* alpha, const float* A, int lda, long long strideA, const float* B, int ldb,               \
     long long strideB, const float* beta, float* C, int ldc, long long strideC, int batchCount))

// ---- cuDNN 9, legacy convolution API (libcudnn.so.9 + libcudnn_cnn.so.9, cudnn_cnn.h) ----
enum cudnnStatus_t : int { CUDNN_STATUS_SUCCESS = 0 };
typedef struct cudnnContext* cudnnHandle_t;
typedef struct cudnnTensorStruct* cudnnTensorDescriptor_t;
typedef struct cudnnFilterStruct* cudnnFilterDescriptor_t;
typedef struct cudnnConvolutionStruct* cudnnConvolutionDescriptor_t;
enum cudnnDataType_t : int { CUDNN_DATA_FLOAT = 0 };
enum cudnnTensorFormat_t : int { CUDNN_TENSOR_NHWC = 1 };
enum cudnnConvolutionMode_t : int { CUDNN_CROSS_CORRELATION = 1 };
enum cudnnMathType_t : int {
  CUDNN_DEFAULT_MATH = 0,
  CUDNN_TENSOR_OP_MATH = 1,
  CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
  CUDNN_FMA_MATH = 3,
};
enum cudnnDeterminism_t : int { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 };
// cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t share this layout; algo is the kind's enum.
struct cudnnConvAlgoPerf {
  int algo;
  cudnnStatus_t status;
  float time;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t mathType;
  int reserved[3];
};

#define BNLAB_CUDNN_API(X)                                                                                  \
  X(cudnnGetVersion, size_t, ())                                                                            \
  X(cudnnGetErrorString, const char*, (cudnnStatus_t status))                                               \
  X(cudnnCreate, cudnnStatus_t, (cudnnHandle_t * handle))                                                   \
  X(cudnnDestroy, cudnnStatus_t, (cudnnHandle_t handle))                                                    \
  X(cudnnSetStream, cudnnStatus_t, (cudnnHandle_t handle, CUstream stream))                                 \
  X(cudnnCreateTensorDescriptor, cudnnStatus_t, (cudnnTensorDescriptor_t * desc))                           \
  X(cudnnSetTensor4dDescriptor, cudnnStatus_t,                                                              \
    (cudnnTensorDescriptor_t desc, cudnnTensorFormat_t format, cudnnDataType_t type, int n, int c, int h,   \
     int w))                                                                                                \
  X(cudnnDestroyTensorDescriptor, cudnnStatus_t, (cudnnTensorDescriptor_t desc))                            \
  X(cudnnCreateFilterDescriptor, cudnnStatus_t, (cudnnFilterDescriptor_t * desc))                           \
  X(cudnnSetFilter4dDescriptor, cudnnStatus_t,                                                              \
    (cudnnFilterDescriptor_t desc, cudnnDataType_t type, cudnnTensorFormat_t format, int k, int c, int h,   \
     int w))                                                                                                \
  X(cudnnDestroyFilterDescriptor, cudnnStatus_t, (cudnnFilterDescriptor_t desc))                            \
  X(cudnnCreateConvolutionDescriptor, cudnnStatus_t, (cudnnConvolutionDescriptor_t * desc))                 \
  X(cudnnSetConvolution2dDescriptor, cudnnStatus_t,                                                         \
    (cudnnConvolutionDescriptor_t desc, int padH, int padW, int strideH, int strideW, int dilationH,        \
     int dilationW, cudnnConvolutionMode_t mode, cudnnDataType_t computeType))                              \
  X(cudnnSetConvolutionMathType, cudnnStatus_t, (cudnnConvolutionDescriptor_t desc, cudnnMathType_t math))  \
  X(cudnnDestroyConvolutionDescriptor, cudnnStatus_t, (cudnnConvolutionDescriptor_t desc))                  \
  X(cudnnGetConvolutionForwardAlgorithmMaxCount, cudnnStatus_t, (cudnnHandle_t handle, int* count))         \
  X(cudnnGetConvolutionBackwardDataAlgorithmMaxCount, cudnnStatus_t, (cudnnHandle_t handle, int* count))    \
  X(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount, cudnnStatus_t, (cudnnHandle_t handle, int* count))  \
  X(cudnnFindConvolutionForwardAlgorithmEx, cudnnStatus_t,                                                  \
    (cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, const void* x, cudnnFilterDescriptor_t wDesc,     \
     const void* w, cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t yDesc, void* y,          \
     int requested, int* returned, cudnnConvAlgoPerf* perf, void* workspace, size_t workspaceBytes))        \
  X(cudnnFindConvolutionBackwardDataAlgorithmEx, cudnnStatus_t,                                             \
    (cudnnHandle_t handle, cudnnFilterDescriptor_t wDesc, const void* w, cudnnTensorDescriptor_t dyDesc,    \
     const void* dy, cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t dxDesc, void* dx,       \
     int requested, int* returned, cudnnConvAlgoPerf* perf, void* workspace, size_t workspaceBytes))        \
  X(cudnnFindConvolutionBackwardFilterAlgorithmEx, cudnnStatus_t,                                           \
    (cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, const void* x, cudnnTensorDescriptor_t dyDesc,    \
     const void* dy, cudnnConvolutionDescriptor_t convDesc, cudnnFilterDescriptor_t dwDesc, void* dw,       \
     int requested, int* returned, cudnnConvAlgoPerf* perf, void* workspace, size_t workspaceBytes))        \
  X(cudnnGetConvolutionForwardWorkspaceSize, cudnnStatus_t,                                                 \
    (cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnFilterDescriptor_t wDesc,                    \
     cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t yDesc, int algo, size_t* bytes))        \
  X(cudnnGetConvolutionBackwardDataWorkspaceSize, cudnnStatus_t,                                            \
    (cudnnHandle_t handle, cudnnFilterDescriptor_t wDesc, cudnnTensorDescriptor_t dyDesc,                   \
     cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t dxDesc, int algo, size_t* bytes))       \
  X(cudnnGetConvolutionBackwardFilterWorkspaceSize, cudnnStatus_t,                                          \
    (cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnTensorDescriptor_t dyDesc,                   \
     cudnnConvolutionDescriptor_t convDesc, cudnnFilterDescriptor_t dwDesc, int algo, size_t* bytes))       \
  X(cudnnConvolutionForward, cudnnStatus_t,                                                                 \
    (cudnnHandle_t handle, const void* alpha, cudnnTensorDescriptor_t xDesc, const void* x,                 \
     cudnnFilterDescriptor_t wDesc, const void* w, cudnnConvolutionDescriptor_t convDesc, int algo,         \
     void* workspace, size_t workspaceBytes, const void* beta, cudnnTensorDescriptor_t yDesc, void* y))     \
  X(cudnnConvolutionBackwardData, cudnnStatus_t,                                                            \
    (cudnnHandle_t handle, const void* alpha, cudnnFilterDescriptor_t wDesc, const void* w,                 \
     cudnnTensorDescriptor_t dyDesc, const void* dy, cudnnConvolutionDescriptor_t convDesc, int algo,       \
     void* workspace, size_t workspaceBytes, const void* beta, cudnnTensorDescriptor_t dxDesc, void* dx))   \
  X(cudnnConvolutionBackwardFilter, cudnnStatus_t,                                                          \
    (cudnnHandle_t handle, const void* alpha, cudnnTensorDescriptor_t xDesc, const void* x,                 \
     cudnnTensorDescriptor_t dyDesc, const void* dy, cudnnConvolutionDescriptor_t convDesc, int algo,       \
     void* workspace, size_t workspaceBytes, const void* beta, cudnnFilterDescriptor_t dwDesc, void* dw))

#define BNLAB_DECLARE_POINTER(name, ret, params) ret(*name) params = nullptr;
struct DriverApi { BNLAB_DRIVER_API(BNLAB_DECLARE_POINTER) };
struct NvrtcApi { BNLAB_NVRTC_API(BNLAB_DECLARE_POINTER) };
struct CublasApi { BNLAB_CUBLAS_API(BNLAB_DECLARE_POINTER) };
struct CudnnApi { BNLAB_CUDNN_API(BNLAB_DECLARE_POINTER) };
#undef BNLAB_DECLARE_POINTER
