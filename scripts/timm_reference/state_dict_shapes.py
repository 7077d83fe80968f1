"""Write tests/data/timm_state_dict_shapes.json: every parameter name and shape of timm's models
of the names ppt_ms registers (num_classes 1000, timm's default input size), as timm 1.x builds
them.  Run in a side environment with torch (CPU) and timm (see README, "Reference data"):

    PYTHONPATH=../shared/tools/tvstub_timm1 python scripts/timm_reference/state_dict_shapes.py NAMES... > out.json
"""
import json
import sys

import timm
import torch


def shapes(name: str) -> dict:
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=1000)
    return {"img_size": list(model.patch_embed.img_size),
            "state_dict": {key: list(value.shape) for key, value in model.state_dict().items()}}


if __name__ == "__main__":
    print(json.dumps({"timm": timm.__version__, "models": {name: shapes(name) for name in sys.argv[1:]}},
                     separators=(",", ":"), sort_keys=True))
