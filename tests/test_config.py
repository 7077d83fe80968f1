"""Tests for ppt_ms.config: defaults, YAML files, overrides, CLI flags and validation errors."""
import copy
import pathlib
import pickle

import pytest

from ppt_ms.builder import model_token_reduction
from ppt_ms.flops import count_macs_for
import yaml

from ppt_ms.config import (DEFAULTS, Config, ConfigError, dump_config, eval_batch_size, load_config, make_config,
                           parse_cli)

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
YAML_FILES = sorted(CONFIG_DIR.rglob("*.yaml"))

# The schema as the task states it, written out independently of the module.
EXPECTED_DEFAULTS = {
    "model": {"name": "deit_small_patch16_224", "num_classes": 1000, "img_size": 224,
              "drop_path_rate": 0.0, "pretrained": None, "use_ema": False, "cpu_kernels": True},
    "token_reduction": {"method": "none", "r": 0, "layers": [3, 6, 9], "threshold": 7e-5,
                        "inflection": None, "prop_attn": True, "trace_source": False,
                        "fused_cpu_kernel": False},
    "data": {"path": None, "train_split": "train", "val_split": "val", "verify_images": False, "batch_size": 64,
             "num_workers": "auto", "crop_pct": 0.875, "interpolation": "bicubic",
             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "hflip": 0.5,
             "scale": [0.08, 1.0], "ratio": [0.75, 1.3333333], "auto_augment": "rand-m9-mstd0.5",
             "reprob": 0.25, "mixup": 0.8, "cutmix": 1.0, "mixup_prob": 1.0,
             "mixup_switch_prob": 0.5, "label_smoothing": 0.1},
    "train": {"epochs": 30, "lr": 5e-4, "min_lr": 1e-5, "warmup_epochs": 5, "warmup_lr": 1e-6,
              "weight_decay": 0.05, "clip_grad": None, "ema": False, "ema_decay": 0.99996,
              "output_dir": "output", "save_every_epochs": 1, "val_every_epochs": 1, "save_every_steps": 0,
              "keep_last": 3, "log_every_steps": 20, "resume": None, "finetune": None},
    "eval": {"batch_size": None, "ckpt": None},
    "export": {"file_format": "MINDIR", "batch_size": 1, "file": None, "dynamic_batch": None},
    "benchmark": {"batch_sizes": [1, 64], "compare": ["none", "tome", "ppt"], "warmup": 3,
                  "repeats": 10, "training": False, "isolate": False, "runtime": "mindspore",
                  "data_pipeline": False},
    "budget": {"macs": None, "speedup": None, "batch_size": 64},
    "system": {"device_target": "CPU", "mode": "graph", "seed": 0, "amp_level": "O0", "amp_dtype": "float16"},
}


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- defaults and shipped configs ---------------------------------------------------------

# model.num_classes defaults to null, which a built config resolves to the model's own class count
UNRESOLVED_DEFAULTS = {**EXPECTED_DEFAULTS, "model": {**EXPECTED_DEFAULTS["model"], "num_classes": None}}


def test_defaults_match_the_schema():
    assert DEFAULTS == UNRESOLVED_DEFAULTS
    assert load_config().to_dict() == EXPECTED_DEFAULTS
    assert make_config().to_dict() == EXPECTED_DEFAULTS


@pytest.mark.parametrize("name, classes", [("deit_small_patch16_224", 1000), ("vit_small_patch14_reg4_dinov2", 0),
                                           ("vit_base_patch16_siglip_224", 0), ("vit_base_patch16_clip_224", 1000),
                                           ("vit_base_patch16_clip_quickgelu_224", 512), ("vit_b_32_224", 1000),
                                           ("vit_large_patch32_224", 0)])
def test_num_classes_unset_is_the_models_default_as_in_timm(name, classes):
    """timm 1.0.31's default pretrained tag of each name (its default_cfgs) decides the class count."""
    assert make_config({"model": {"name": name}}).model.num_classes == classes
    assert make_config({"model": {"name": name, "num_classes": 7}}).model.num_classes == 7
    from ppt_ms.models import create_model
    from mindspore.nn.utils import no_init_parameters
    with no_init_parameters():
        assert create_model(name).num_classes == classes


def test_building_configs_leaves_defaults_untouched():
    make_config({"token_reduction": {"layers": [1, 2]}}, ["data.mean=[0, 0, 0]"])
    assert DEFAULTS == UNRESOLVED_DEFAULTS


def test_config_folder_has_the_expected_files():
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in YAML_FILES}
    sizes = ("tiny", "small", "base")
    expected = ({f"deit/deit_{s}.yaml" for s in sizes} | {f"ppt/ppt_deit_{s}.yaml" for s in sizes}
                | {f"tome/tome_deit_{s}.yaml" for s in sizes}
                | {"prune/prune_deit_small.yaml", "quickstart.yaml"})
    assert expected <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_every_shipped_yaml_loads_and_sets_only_what_it_says(path):
    cfg = load_config(path)
    written = yaml.safe_load(path.read_text())
    for section, values in written.items():
        for key, value in values.items():
            assert cfg[section][key] == pytest.approx(value) if isinstance(value, float) \
                else cfg[section][key] == value, f"{section}.{key}"


FAMILY_CONFIGS = [p for p in YAML_FILES if p.parent.name in ("clip", "siglip", "dinov2", "deit3")]


def test_every_family_has_a_config_per_method():
    """none and ToMe for every model; PPT wherever the model has a class token (not SigLIP)."""
    stems = {p.stem for p in FAMILY_CONFIGS}
    models = {stem for stem in stems if not stem.endswith(("_tome", "_ppt"))}
    assert len(models) == 10
    for model in models:
        assert model + "_tome" in stems and (model + "_ppt" in stems) == ("siglip" not in model)


@pytest.mark.parametrize("path", FAMILY_CONFIGS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_family_configs_build_their_model_and_token_plan(path):
    cfg = load_config(path)
    macs = count_macs_for(cfg.model.name, model_token_reduction(cfg), cfg.model.img_size, cfg.model.num_classes)
    none = count_macs_for(cfg.model.name, None, cfg.model.img_size, cfg.model.num_classes)
    assert (macs.total < none.total) == (cfg.token_reduction.method != "none")


@pytest.mark.parametrize("size, model_r", [("tiny", 13), ("small", 13), ("base", 16)])
def test_method_configs_use_the_published_settings(size, model_r):
    ppt = load_config(CONFIG_DIR / f"ppt/ppt_deit_{size}.yaml")
    assert ppt.model.name == f"deit_{size}_patch16_224"
    assert (ppt.token_reduction.method, ppt.token_reduction.r) == ("ppt", 50)
    assert ppt.token_reduction.layers == [3, 6, 9]
    assert isinstance(ppt.token_reduction.threshold, float)
    assert ppt.token_reduction.threshold == pytest.approx(7e-5, rel=1e-12)
    tome = load_config(CONFIG_DIR / f"tome/tome_deit_{size}.yaml")
    assert (tome.token_reduction.method, tome.token_reduction.r) == ("tome", model_r)
    assert load_config(CONFIG_DIR / f"deit/deit_{size}.yaml").token_reduction.method == "none"


def test_quickstart_config():
    cfg = load_config(CONFIG_DIR / "quickstart.yaml")
    assert (cfg.model.name, cfg.model.num_classes, cfg.model.img_size) == ("vit_quickstart", 10, 24)
    assert cfg.data.path == "data/digits"
    assert cfg.token_reduction.method == "ppt" and cfg.token_reduction.layers == [1, 2]
    assert (cfg.data.mixup, cfg.data.cutmix, cfg.data.reprob, cfg.data.auto_augment) == (0, 0, 0, None)
    assert cfg.train.output_dir == "output/quickstart"


@pytest.mark.parametrize("overrides, expected", [([], 64), (["data.batch_size=8"], 8),
                                                 (["data.batch_size=8", "eval.batch_size=100"], 100)])
def test_eval_batch_size_follows_data_batch_size_unless_set(overrides, expected):
    assert eval_batch_size(make_config(None, overrides)) == expected
    assert eval_batch_size(make_config(None, overrides).to_dict()) == expected


# --- YAML parsing and overrides -----------------------------------------------------------

@pytest.mark.parametrize("text, value", [("7e-5", 7e-5), ("7.0e-5", 7e-5), ("1E9", 1e9),
                                         ("+2.5e+3", 2500.0), (".5e-2", 0.005), ("3", 3.0)])
def test_scientific_notation_is_a_float_in_files_and_overrides(tmp_path, text, value):
    from_file = load_config(write(tmp_path, f"token_reduction:\n  threshold: {text}\n"))
    from_override = load_config(overrides=[f"token_reduction.threshold={text}"])
    for cfg in (from_file, from_override):
        assert type(cfg.token_reduction.threshold) is float
        assert cfg.token_reduction.threshold == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("override, key, value", [
    ("token_reduction.r=50", ("token_reduction", "r"), 50),
    ("token_reduction.r=[40, 50, 30]", ("token_reduction", "r"), [40, 50, 30]),
    ("token_reduction.layers=[1,2]", ("token_reduction", "layers"), [1, 2]),
    ("token_reduction.prop_attn=false", ("token_reduction", "prop_attn"), False),
    ("token_reduction.inflection=-0.5", ("token_reduction", "inflection"), -0.5),
    ("model.pretrained=weights/deit s.pth", ("model", "pretrained"), "weights/deit s.pth"),
    ("data.auto_augment=null", ("data", "auto_augment"), None),
    ("system.amp_level=O2", ("system", "amp_level"), "O2"),
    ("train.clip_grad=5", ("train", "clip_grad"), 5.0),
    (("train.epochs", 3), ("train", "epochs"), 3),
])
def test_override_forms(override, key, value):
    got = load_config(overrides=[override])[key[0]][key[1]]
    assert got == value and type(got) is type(value)


def test_overrides_apply_after_the_file_in_order(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 7\n  lr: 1.0e-3\n")
    cfg = load_config(path, ["train.epochs=2", "train.epochs=4"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.min_lr) == (4, 1e-3, 1e-5)


def test_empty_file_and_empty_section_give_defaults(tmp_path):
    assert load_config(write(tmp_path, "")).to_dict() == EXPECTED_DEFAULTS
    assert load_config(write(tmp_path, "eval:\n", "b.yaml")).to_dict() == EXPECTED_DEFAULTS


# --- Config object and dump ---------------------------------------------------------------

def test_config_access_copy_and_pickle():
    cfg = load_config(overrides=["token_reduction.r=5"])
    assert cfg.token_reduction.r == cfg["token_reduction"]["r"] == 5
    assert isinstance(cfg, Config) and set(cfg) == set(EXPECTED_DEFAULTS)
    plain = cfg.to_dict()
    plain["token_reduction"]["layers"].append(11)
    assert cfg.token_reduction.layers == [3, 6, 9]
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert copy.deepcopy(cfg).to_dict() == cfg.to_dict()
    with pytest.raises(AttributeError, match="read-only"):
        cfg.token_reduction.r = 3
    with pytest.raises(AttributeError, match=r"token_reduction\.rr.*did you mean 'r'"):
        cfg.token_reduction.rr  # noqa: B018


def test_dump_round_trips_and_stays_standard_yaml(tmp_path):
    cfg = load_config(overrides=["token_reduction.method=ppt", "token_reduction.r=[1, 2, 3]",
                                 "train.lr=2e-4", "data.path=some/dir"])
    path = tmp_path / "nested" / "out.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg
    plain = yaml.safe_load(path.read_text())  # a reader without the scientific-notation fix
    assert plain["token_reduction"]["threshold"] == 7e-5
    assert plain["train"]["lr"] == 2e-4


# --- validation errors --------------------------------------------------------------------

# (overrides, fragments that must all appear in the error message)
BAD_VALUES = [
    (["modle.name=x"], ["'modle'", "did you mean 'model'", "token_reduction", "system"]),
    (["token_reduction.rr=1"], ["token_reduction.rr", "did you mean 'token_reduction.r'",
                                "method, r, layers, threshold, inflection, prop_attn"]),
    (["token_reduction=1"], ["section.key"]),
    (["token_reduction.layers=5"], ["token_reduction.layers", "list", "5"]),
    (["token_reduction.layers=[3, 3]"], ["token_reduction.layers", "strictly increasing"]),
    (["token_reduction.layers=[6, 3]"], ["token_reduction.layers", "strictly increasing"]),
    (["token_reduction.layers=[1, -2]"], ["token_reduction.layers[1]", "int >= 0", "-2"]),
    (["token_reduction.layers=[1, 2.0]"], ["token_reduction.layers[1]", "int >= 0"]),
    (["token_reduction.r=-1"], ["token_reduction.r", ">= 0", "-1"]),
    (["token_reduction.r=[5, -1]"], ["token_reduction.r[1]", ">= 0"]),
    (["token_reduction.r=true"], ["token_reduction.r", "int", "True", "bool"]),
    (["token_reduction.r=2.5"], ["token_reduction.r", "int", "2.5"]),
    (["token_reduction.threshold=-7e-5"], ["token_reduction.threshold", ">= 0", "-7e-05"]),
    (["token_reduction.threshold=.nan"], ["token_reduction.threshold", "nan"]),
    (["token_reduction.threshold=low"], ["token_reduction.threshold", "float", "'low'"]),
    (["token_reduction.prop_attn=1"], ["token_reduction.prop_attn", "true or false"]),
    (["token_reduction.method=pptt"], ["token_reduction.method", "none, ppt, tome, prune",
                                       "did you mean 'ppt'"]),
    (["token_reduction.method=ppt", "token_reduction.r=[40, 50]"],
     ["token_reduction.r", "3 values", "got 2"]),
    (["token_reduction.method=prune", "token_reduction.r=[1, 2, 3, 4]"],
     ["token_reduction.r", "3 values", "got 4"]),
    (["token_reduction.method=ppt", "token_reduction.layers=[]"], ["token_reduction.layers", "at least one"]),
    (["token_reduction.method=tome", "token_reduction.r=[1, 2]", "token_reduction.inflection=0.5"],
     ["token_reduction.inflection", "int token_reduction.r"]),
    (["token_reduction.method=ppt", "token_reduction.inflection=0.5"], ["token_reduction.inflection", "tome"]),
    (["model.num_classes=true"], ["model.num_classes", "int >= 0", "bool"]),
    (["model.num_classes=-1"], ["model.num_classes", "int >= 0"]),
    (["model.img_size=[224, 224]"], ["model.img_size", "int"]),
    (["model.drop_path_rate=1.0"], ["model.drop_path_rate", "[0.0, 1.0)"]),
    (["model.name=12"], ["model.name", "string", "quote it"]),
    (["model.pretrained=[a, b]"], ["model.pretrained", "string or null"]),
    (["system.device_target=cpu"], ["system.device_target", "CPU, GPU, Ascend", "did you mean 'CPU'"]),
    (["system.mode=eager"], ["system.mode", "graph, pynative"]),
    (["system.amp_level=O4"], ["system.amp_level", "O0, O1, O2, O3"]),
    (["system.seed=-1"], ["system.seed", ">= 0"]),
    (["export.file_format=TFLITE"], ["export.file_format", "MINDIR, ONNX, AIR"]),
    (["data.interpolation=nearest"], ["data.interpolation", "bicubic, bilinear"]),
    (["data.mean=[0.5, 0.5]"], ["data.mean", "3 items"]),
    (["data.std=[0.2, 0, 0.2]"], ["data.std[1]", "> 0"]),
    (["data.scale=[1.0, 0.5]"], ["data.scale", "low <= high"]),
    (["data.hflip=1.5"], ["data.hflip", "[0.0, 1.0]"]),
    (["data.batch_size=0"], ["data.batch_size", ">= 1"]),
    (["train.epochs=2.5"], ["train.epochs", "int"]),
    (["train.lr=0"], ["train.lr", "> 0"]),
    (["train.ema_decay=1"], ["train.ema_decay", "(0.0, 1.0)"]),
    (["train.resume=auto", "train.finetune=x.ckpt"], ["train.resume", "train.finetune", "at most one"]),
    (["benchmark.compare=[none, ppt, ppt]"], ["benchmark.compare", "without repeats"]),
    (["benchmark.compare=[none, fast]"], ["benchmark.compare[1]", "none, ppt, tome, prune"]),
    (["benchmark.batch_sizes=[]"], ["benchmark.batch_sizes", "at least 1"]),
    (["token_reduction.r"], ["section.key=value"]),
    (["token_reduction.layers=[1, 2"], ["cannot parse", "token_reduction.layers"]),
]


@pytest.mark.parametrize("overrides, fragments", BAD_VALUES, ids=lambda v: str(v)[:60])
def test_bad_values_raise_config_error_naming_the_problem(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_tome_schedule_and_lists_are_accepted():
    tome = load_config(overrides=["token_reduction.method=tome", "token_reduction.r=16",
                                  "token_reduction.inflection=-1.0"])
    assert (tome.token_reduction.r, tome.token_reduction.inflection) == (16, -1.0)
    per_block = load_config(overrides=["token_reduction.method=tome", "token_reduction.r=[8, 8, 4]"])
    assert per_block.token_reduction.r == [8, 8, 4]
    always_pool = load_config(overrides=["token_reduction.method=ppt", "token_reduction.threshold=.inf"])
    assert always_pool.token_reduction.threshold == float("inf")


@pytest.mark.parametrize("text, fragments", [
    ("token_reduction:\n  r: [1, 2\n", ["cfg.yaml", "cannot parse"]),
    ("token_reduction:\n  r: 1\n  r: 2\n", ["cfg.yaml", "duplicate key 'r'"]),
    ("- model\n- data\n", ["cfg.yaml", "mapping"]),
    ("model: deit_small_patch16_224\n", ["cfg.yaml", "flat mindcv config", "model -> model.name"]),
    ("token_reduction:\n  metod: ppt\n", ["cfg.yaml", "token_reduction.metod",
                                          "did you mean 'token_reduction.method'"]),
    ("token_reduction:\n  method: ppt\n  r: [1, 2]\n", ["token_reduction.r", "3 values"]),
])
def test_bad_files_raise_config_error(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(missing)


# --- command line ---------------------------------------------------------------------------

def add_tool_args(parser):
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--json", action="store_true")


def test_cli_dotted_flags_and_set(tmp_path):
    path = write(tmp_path, "token_reduction:\n  method: ppt\n  r: 8\n")
    cfg, args = parse_cli(["--config", str(path), "--token_reduction.r", "50",
                           "--set", "token_reduction.layers=[1,2,4]",
                           "--set", "token_reduction.threshold=7e-5",
                           "--train.epochs=3", "--benchmark.batch_sizes", "1", "8", "32",
                           "--ckpt", "m.ckpt", "--json"], "test tool", add_tool_args)
    assert cfg.token_reduction.r == 50 and type(cfg.token_reduction.r) is int
    assert cfg.token_reduction.layers == [1, 2, 4]
    assert type(cfg.token_reduction.threshold) is float and cfg.token_reduction.threshold == 7e-5
    assert cfg.train.epochs == 3 and cfg.benchmark.batch_sizes == [1, 8, 32]
    assert cfg.token_reduction.method == "ppt"
    assert (args.ckpt, args.json, args.config) == ("m.ckpt", True, str(path))
    assert not any(name.startswith("_") for name in vars(args))


def test_cli_list_flag_with_one_value_is_a_one_item_list():
    cfg, _ = parse_cli(["--benchmark.batch_sizes", "64", "--token_reduction.layers", "[2, 5]",
                        "--benchmark.compare", "ppt"])
    assert cfg.benchmark.batch_sizes == [64] and cfg.benchmark.compare == ["ppt"]
    assert cfg.token_reduction.layers == [2, 5]
    one_r, _ = parse_cli(["--token_reduction.r", "8"])
    assert one_r.token_reduction.r == 8  # r takes an int or a per-block list; one value stays an int


def test_cli_applies_overrides_in_command_line_order():
    later_flag, _ = parse_cli(["--set", "train.epochs=3", "--train.epochs", "4"])
    later_set, _ = parse_cli(["--train.epochs", "4", "--set", "train.epochs=3"])
    assert (later_flag.train.epochs, later_set.train.epochs) == (4, 3)


def test_cli_without_arguments_gives_defaults():
    cfg, args = parse_cli([])
    assert cfg.to_dict() == EXPECTED_DEFAULTS and args.config is None


@pytest.mark.parametrize("argv, fragments", [
    (["--token_reduction.rr", "5"], ["token_reduction.rr", "did you mean 'token_reduction.r'",
                                     "method, r, layers, threshold"]),
    (["--tokenreduction.r", "5"], ["tokenreduction", "token_reduction", "benchmark"]),
    (["--token_reduction.method", "fast"], ["token_reduction.method", "none, ppt, tome, prune"]),
    (["--set", "train.epochs"], ["section.key=value"]),
    (["--bogus"], ["unrecognized arguments", "--bogus"]),
    (["--config", "/nonexistent/cfg.yaml"], ["/nonexistent/cfg.yaml"]),
])
def test_cli_errors_exit_2_with_a_message(argv, fragments, capsys):
    with pytest.raises(SystemExit) as info:
        parse_cli(argv, "test tool")
    assert info.value.code == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err
    assert "--data.mixup_switch_prob" not in err  # the short usage, not all 60 config flags


def test_cli_help_lists_config_keys(capsys):
    with pytest.raises(SystemExit) as info:
        parse_cli(["--help"], "test tool", add_tool_args)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--token_reduction.threshold" in out and "--ckpt" in out and "test tool" in out


# --- mindcv's keys and flags ----------------------------------------------------------------

MINDCV_YAML = """mode: 0
distribute: False
num_parallel_workers: 8
data_dir: /data/imagenet
image_resize: 224
model: vit_b_32_224
amp_level: O2
epoch_size: 300
lr: 0.003
dataset_sink_mode: True
"""


def test_a_flat_mindcv_config_is_answered_in_one_message(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, MINDCV_YAML))
    message = str(error.value)
    assert "\n" not in message and "flat mindcv config" in message and "did you mean" not in message
    for part in ("mode -> system.mode", "num_parallel_workers -> data.num_workers", "data_dir -> data.path",
                 "image_resize -> model.img_size", "model -> model.name", "amp_level -> system.amp_level",
                 "epoch_size -> train.epochs", "lr -> train.lr", "distribute: no equivalent",
                 "dataset_sink_mode: no equivalent"):
        assert part in message, part
    # a ppt_ms section named like a mindcv key stays a section
    assert load_config(write(tmp_path, "model:\n  name: vit_b_32_224\n", "ok.yaml")).model.name == "vit_b_32_224"


@pytest.mark.parametrize("flag, key", [("--amp_level", "system.amp_level"), ("--ckpt_path", "model.pretrained"),
                                       ("--device_target", "system.device_target"), ("--mode", "system.mode"),
                                       ("--dataset_sink_mode", "no equivalent"), ("--epoch_size", "train.epochs"),
                                       ("--image_resize", "model.img_size"), ("--val_while_train", "train.val_every")])
def test_mindcv_flags_name_the_key_to_use(flag, key, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_cli([flag, "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "mindcv's flag" in err[0] and key in err[0]


@pytest.mark.parametrize("tool", ["embed", "eval", "quickstart", "sweep", "train", "visualize", "benchmark", "export"])
def test_every_tool_help_says_what_it_does_in_whole_sentences(tool, capsys):
    from helpers.paths import load_tool
    with pytest.raises(SystemExit) as stop:
        load_tool(tool).main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    description = " ".join(out.split("\n\n")[1].split())  # argparse: usage, blank line, description
    assert description.endswith(".") and description[0].isupper(), description
