// oneDNN convolutions against the stock cpu backend, activations nhwc: NHWC everywhere, GEMM primitives included.
import { dnnlConvSuite } from './helpers/dnnl-conv-suite.js';

dnnlConvSuite('nhwc');
