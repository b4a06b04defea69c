"""The embedding runtime: interface, registry, torch and ONNX paths, query batching and cache."""
