"""What a ViT state dict looks like, read off its keys and shapes: depth, width, patch size,
prefix tokens, head; and the registered model names it most likely is.  Used to explain a
checkpoint that does not fit a network in a few sentences instead of a list of keys."""
import math
import re
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple


@dataclass(frozen=True)
class ViTShape:
    depth: int
    width: int
    patch: int
    grid: Optional[int]  # patches per side (None: no square grid)
    class_token: bool
    distilled: bool
    registers: int
    layer_scale: bool
    pre_norm: bool
    pool: str            # token | avg | map
    classes: int         # 0: no classifier

    @property
    def architecture(self) -> Tuple:
        """Everything but the input size and the class count: what must agree for weights to load."""
        return (self.depth, self.width, self.patch, self.class_token, self.distilled, self.registers,
                self.layer_scale, self.pre_norm, self.pool)

    def text(self) -> str:
        prefix = [name for name, present in (("class token", self.class_token), ("distillation token", self.distilled),
                                             ("%d registers" % self.registers, self.registers)) if present]
        grid = ("%d x %d patches of %d px (%d px)" % (self.grid, self.grid, self.patch, self.grid * self.patch)
                if self.grid else "%d px patches" % self.patch)
        parts = ["%d blocks of width %d" % (self.depth, self.width), grid,
                 " + ".join(prefix) if prefix else "no prefix tokens"]
        parts += [name for name, present in (("LayerScale", self.layer_scale), ("pre-norm", self.pre_norm)) if present]
        parts.append("%s pooling, %s" % (self.pool, "%d classes" % self.classes if self.classes else "no classifier"))
        return ", ".join(parts)


    def differences(self, other: "ViTShape") -> List[str]:
        """'field: ours vs other's' for every field in which `other` differs."""
        return ["%s %s vs %s" % (name.replace("_", " "), getattr(self, name), getattr(other, name))
                for name in self.__dataclass_fields__ if getattr(self, name) != getattr(other, name)]


def shape_of_state(shapes: Mapping[str, Tuple[int, ...]]) -> Optional[ViTShape]:
    """The ViTShape of a state dict given as {key: shape}, or None when it is not a timm-style ViT."""
    kernel = shapes.get("patch_embed.proj.weight")
    if kernel is None or len(kernel) != 4:
        return None
    width, patch = kernel[0], kernel[-1]
    blocks = {int(m.group(1)) for m in (re.match(r"blocks\.(\d+)\.", key) for key in shapes) if m}
    registers = shapes["reg_token"][1] if "reg_token" in shapes else 0
    prefix = int("cls_token" in shapes) + int("dist_token" in shapes) + registers
    positions = shapes.get("pos_embed", (1, 0, width))[1]
    grid = next((side for side in (math.isqrt(positions - prefix), math.isqrt(positions))
                 if side > 0 and side * side in (positions - prefix, positions)), None)
    pool = "map" if "attn_pool.latent" in shapes else ("token" if "cls_token" in shapes else "avg")
    return ViTShape(depth=len(blocks), width=width, patch=patch, grid=grid, class_token="cls_token" in shapes,
                    distilled="dist_token" in shapes, registers=registers,
                    layer_scale="blocks.0.ls1.gamma" in shapes, pre_norm="norm_pre.weight" in shapes, pool=pool,
                    classes=shapes["head.weight"][0] if "head.weight" in shapes else 0)


def likely_models(shape: ViTShape, limit: int = 3) -> List[str]:
    """Registered names whose architecture is `shape`'s, the closest input size first."""
    from ..models import ARCHITECTURES, create_model  # the models package imports this one
    from mindspore.nn.utils import no_init_parameters

    names = []
    for name, arch in ARCHITECTURES.items():
        if (arch["depth"], arch["embed_dim"], arch["patch_size"]) != (shape.depth, shape.width, shape.patch):
            continue
        with no_init_parameters():
            candidate = create_model(name)
        theirs = shape_of_state({n: tuple(p.shape) for n, p in candidate.parameters_and_names()})
        if theirs.architecture == shape.architecture:
            names.append((abs((theirs.grid or 0) - (shape.grid or 0)), name))
    return [name for _, name in sorted(names)][:limit]
