"""Read and write golden tensors: manifest.json (name -> shape, dtype) plus
NAME.bin (raw little-endian float32 / int32, row-major)."""

import json
import os
from typing import Dict

import numpy as np

_DTYPES = {"float32": "<f4", "int32": "<i4"}


def read_goldens(goldens_dir: str) -> Dict[str, np.ndarray]:
    with open(os.path.join(goldens_dir, "manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    for name, meta in manifest.items():
        data = np.fromfile(os.path.join(goldens_dir, name + ".bin"),
                           dtype=_DTYPES[meta["dtype"]])
        out[name] = data.reshape(meta["shape"])
    return out


def write_goldens(goldens_dir: str, tensors: Dict[str, np.ndarray]) -> None:
    """Writes in the given order; float arrays as float32, ints as int32."""
    os.makedirs(goldens_dir, exist_ok=True)
    manifest = {}
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dtype = "float32" if arr.dtype.kind == "f" else "int32"
        arr = np.ascontiguousarray(arr.astype(_DTYPES[dtype]))
        arr.tofile(os.path.join(goldens_dir, name + ".bin"))
        manifest[name] = {"shape": list(arr.shape), "dtype": dtype}
    with open(os.path.join(goldens_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
