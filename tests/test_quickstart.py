"""The quick start's own pieces: the accuracy table, the speed check's settings and the token map
(the whole run takes minutes; scripts/quickstart.sh runs it)."""
import os

import mindspore as ms

from ppt_ms.benchmark import variant_configs
from ppt_ms.config import load_config
from ppt_ms.models import create_model
from ppt_ms.quickstart import SPEED_CHECK, format_comparison, token_map
from ppt_ms.config import make_config
from helpers.paths import QUICKSTART


def test_accuracy_table_gives_macs_against_none_and_no_speed():
    rows = [{"label": "none", "final_tokens": 65, "macs": 15.14e6, "top1": 97.0, "top5": 100.0},
            {"label": "ppt", "final_tokens": 49, "macs": 11.355e6, "top1": 96.5, "top5": 100.0}]
    lines = format_comparison(rows).splitlines()
    assert lines[0].split() == ["method", "final", "tokens", "MACs/image", "MACs", "vs", "none", "top-1", "%",
                                "top-5", "%"]
    assert lines[2].split() == ["ppt", "49", "11.36", "M", "0.75", "96.50", "100.00"]
    assert "images/s" not in lines[0]


def test_speed_check_is_the_papers_deit_s_settings():
    cfg = make_config(load_config(QUICKSTART).to_dict(), SPEED_CHECK)
    variants = variant_configs(cfg)
    assert list(variants) == ["none", "tome-fused", "ppt-fused"]
    assert all(v.model.name == "deit_small_patch16_224" and v.model.pretrained is None for v in variants.values())
    ppt, tome = variants["ppt-fused"].token_reduction, variants["tome-fused"].token_reduction
    assert (ppt.method, ppt.r, ppt.layers, ppt.threshold, tome.method, tome.r) == ("ppt", 50, [3, 6, 9], 7e-5, "tome", 13)
    assert ppt.fused_cpu_kernel and tome.fused_cpu_kernel
    assert cfg.benchmark.batch_sizes == [8]


def test_token_map_is_written_and_named(digits_subset, tmp_path, graph):
    root = digits_subset("quick_map", {"val": 1})
    cfg = load_config(QUICKSTART, [f"data.path={root}"])
    ms.set_seed(0)
    weights = str(tmp_path / "w.ckpt")
    ms.save_checkpoint(create_model("vit_quickstart"), weights)
    message = token_map(cfg, weights, str(tmp_path / "maps"))
    written = os.listdir(tmp_path / "maps")
    assert len(written) == 1 and written[0].endswith(".png")
    assert message.startswith("token map (PPT in the trained vit_quickstart on %s" % os.path.join(str(root), "val", "0"))
    assert message.endswith(str(tmp_path / "maps" / written[0]))
