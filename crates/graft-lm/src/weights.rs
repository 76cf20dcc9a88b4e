//! safetensors weight loading (in progress).
