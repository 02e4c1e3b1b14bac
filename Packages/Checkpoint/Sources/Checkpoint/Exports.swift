// The shared tensor-file types (`TensorSource`, `TensorFileError`, `NamedTensors`, `StoredDType`,
// `WeightDType`) and the safetensors reader and writer are part of Checkpoint's API.
@_exported import Safetensors
