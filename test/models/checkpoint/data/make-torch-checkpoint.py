"""Writes tiny.ckpt: a small checkpoint saved by PyTorch itself (torch.save, zip format), shaped like a
Lightning training checkpoint, for the restricted pickle reader's tests (test/models/checkpoint/torch-zip.test.ts).

It holds float32, float16, bfloat16 and int64 tensors, two tensors that share one storage (views at an
offset), a non-contiguous tensor, an nn.Parameter, nested dicts, plain values, and an object whose
unpickling would call os.system: a reader that runs pickle code would create `pwned` beside the file.
tiny.json lists every contiguous tensor's dtype, shape and values for the test to compare.

    pip install torch && python3 make-torch-checkpoint.py   # run in this folder
"""
import collections
import json
import os

import torch


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


g = torch.Generator().manual_seed(0)
base = torch.randn(6, 4, generator=g)
state = collections.OrderedDict()
state["model.diffusion_model.time_embed.0.weight"] = torch.randn(8, 4, generator=g)
state["model.diffusion_model.time_embed.0.bias"] = torch.nn.Parameter(torch.randn(8, generator=g))
state["first_stage_model.quant_conv.weight"] = torch.randn(2, 2, 1, 1, generator=g).half()
state["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.randn(5, generator=g).bfloat16()
state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(7).unsqueeze(0)
state["shared.head"] = base[:2]
state["shared.tail"] = base[3:]
state["transposed"] = torch.randn(3, 2, generator=g).t()

checkpoint = {
    "epoch": 3,
    "global_step": 1234,
    "pytorch-lightning_version": "1.9.0",
    "state_dict": state,
    "callbacks": {"evil": Evil()},
    "hyper_parameters": {"lr": 1e-4, "name": "tiny"},
}
torch.save(checkpoint, "tiny.ckpt")

reference = {}
for name, t in state.items():
    if name == "transposed":
        continue
    t = t.detach()
    reference[name] = {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "values": t.float().flatten().tolist() if t.is_floating_point() else t.flatten().tolist(),
    }
with open("tiny.json", "w") as f:
    json.dump(reference, f, indent=1)
