// Identity without a copy. The stock wasm Identity copies the tensor's bytes, and tfjs clones
// (= Identity) every tensor it saves for the backward pass, so each conv input, filter and BN
// input was duplicated on the wasm heap for the whole step. Tensors are immutable and the wasm
// backend reference-counts its data (Reshape already shares data this way, as does the cpu
// backend's Identity), so the clone can share the data: incRef and return the same dataId.
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

export function sharedIdentityKernel(stock: KernelConfig): KernelConfig {
  const kernelFunc = ((args) => {
    const x = (args.inputs as { x: TensorInfo }).x;
    if (x.dtype === 'string') return stock.kernelFunc(args);
    (args.backend as { incRef(id: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as KernelFunc;
  return { kernelName: 'Identity', backendName: stock.backendName, kernelFunc, setupFunc: stock.setupFunc };
}
