// oneDNN convolutions against the stock cpu backend with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA):
// an AVX-512 machine also tests the kernels an AVX2 machine runs (issue 27), activations auto.
import { dnnlConvSuite } from './helpers/dnnl-conv-suite.js';

dnnlConvSuite('auto', 'AVX2');
