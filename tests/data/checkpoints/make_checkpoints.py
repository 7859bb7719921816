"""Writes the small torch.save fixtures that tests/model/test_checkpoint.cc reads.

Run once where torch is installed (any version >= 1.6):  python make_checkpoints.py
The values are simple formulas (multiples of 0.5, exact in every float type) that the C++ test
recomputes, so the files need no companion expected-output data.
"""
import collections
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def ramp(n, dtype):
    return (torch.arange(n, dtype=torch.float64) * 0.5 - 1.0).to(dtype)


def dtypes():
    sd = collections.OrderedDict()
    for name, dt in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16),
                     ("f64", torch.float64)]:
        sd[name] = ramp(6, dt).reshape(2, 3)
    sd["i64"] = torch.arange(5, dtype=torch.int64) - 2
    sd["i32"] = torch.arange(5, dtype=torch.int32) - 2
    sd["i16"] = torch.arange(5, dtype=torch.int16) - 2
    sd["i8"] = torch.arange(5, dtype=torch.int8) - 2
    sd["u8"] = torch.arange(5, dtype=torch.uint8) + 250
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 4)
    torch.save(sd, os.path.join(HERE, "dtypes.pt"))


def views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict()
    sd["full"] = base
    sd["transposed"] = base.t()          # stride (1, 6)
    sd["sliced"] = base[1:3, 2:5]        # offset 8, stride (6, 1)
    sd["stepped"] = base[:, ::2]         # stride (6, 2)
    sd["row"] = base[2]                  # offset 12
    sd["half_transposed"] = base.half().t()
    torch.save(sd, os.path.join(HERE, "views.pt"))


def parameter_protocol4():
    # A plain dict of nn.Parameters (torch._utils._rebuild_parameter), pickled with protocol 4
    # (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL).
    sd = {"w": torch.nn.Parameter(ramp(4, torch.float32).reshape(2, 2)), "b": torch.nn.Parameter(ramp(2, torch.float32))}
    torch.save(sd, os.path.join(HERE, "parameter_protocol4.pt"), pickle_protocol=4)


if __name__ == "__main__":
    dtypes()
    views()
    parameter_protocol4()
    print("torch", torch.__version__)
