"""Minimal safetensors reader/writer for torch tensors (F32, F64 and I64 only).

Used by the reference scripts so that they need nothing beyond torch (the
project venv has no numpy or safetensors package). The format: 8-byte
little-endian header length, a JSON header mapping names to dtype, shape and
byte offsets, then the raw little-endian data.
"""

import ctypes
import json
import os
import struct
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
_NAMES = {v: k for k, v in _DTYPES.items()}


def load(path):
    """Returns {name: tensor} for every tensor in the file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = memoryview(raw)[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = _DTYPES[meta["dtype"]]
        if end == start:
            t = torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(body[start:end]), dtype=dtype)
        out[name] = t.reshape(meta["shape"])
    return out


def save(path, tensors):
    """Writes {name: tensor} atomically (temporary file, then rename)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        b = _bytes(t)
        header[name] = {
            "dtype": _NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in chunks:
            f.write(b)
    os.replace(tmp, path)


def _bytes(t):
    # Without numpy: copy the raw bytes of a contiguous tensor with ctypes.
    t = t.reshape(-1).contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
