// oneDNN convolutions against the stock cpu backend, activations blocked: blocked activations bracketed by reorders (the AVX2 path).
import { dnnlConvSuite } from './helpers/dnnl-conv-suite.js';

dnnlConvSuite('blocked');
