@_exported import TensorKernels
