// oneDNN convolutions against the stock cpu backend, activations auto: the default: NHWC where oneDNN has direct kernels for it, blocked elsewhere.
import { dnnlConvSuite } from './helpers/dnnl-conv-suite.js';

dnnlConvSuite('auto');
