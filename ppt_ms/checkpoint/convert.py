"""convert_checkpoint: any supported checkpoint -> MindSpore .ckpt, optionally checked by loading it into a model."""
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ..progress import Progress
from .loading import LoadReport, load_pretrained
from .saving import save_checkpoint_atomic
from .layouts import layout_note, to_timm_names
from .state_dict import detect_format, read_state_dict
from .training_state import split_training_state


@dataclass
class ConversionSummary:
    source: str
    source_format: str
    destination: str
    num_tensors: int
    num_elements: int
    model: Optional[str] = None
    report: Optional[LoadReport] = None
    notes: List[str] = field(default_factory=list)  # without a model: training state set aside, layout renamed

    def lines(self) -> List[str]:
        out = ["read %s (%s): %d tensors, %d values" % (self.source, self.source_format, self.num_tensors,
                                                         self.num_elements)]
        out += self.notes
        if self.report is not None:
            out.append("loaded into %s:" % self.model)
            out += ["  " + line for line in self.report.lines()]
        out.append("wrote %s" % self.destination)
        return out


def convert_checkpoint(src, dst, model_name: Optional[str] = None, num_classes: Optional[int] = None,
                       img_size: Optional[int] = None, use_ema: bool = False) -> ConversionSummary:
    """Read `src` (any format read_state_dict supports) and write its weights to `dst` (.ckpt) under
    timm's names: training state set aside (the EMA copy with `use_ema`), mindcv's layouts renamed.
    With `model_name`, build that model (num_classes / img_size overrides) and load the weights
    into it strictly first, so the written checkpoint is known to fit; pos_embed may be resized
    and a classifier the model does not have skipped."""
    source_format = detect_format(src)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with Progress("convert", 2 if model_name is None else 3, "steps") as progress:  # read, (load,) write
        state = read_state_dict(src, use_ema=use_ema)
        progress.update()
        summary = ConversionSummary(os.fspath(src), source_format, os.fspath(dst), len(state),
                                    sum(int(array.size) for array in state.values()), model_name)
        if model_name is None:
            state, note = split_training_state(state, use_ema)
            state, layout = to_timm_names(state)
            summary.notes = [line for line in (note, layout_note(layout)) if line]
            save_checkpoint_atomic(state, dst)
            progress.update()
            return summary
        # imported here: ppt_ms.models may itself import this package for pretrained weights
        from ..models import create_model

        overrides = {k: v for k, v in (("num_classes", num_classes), ("img_size", img_size)) if v is not None}
        net = create_model(model_name, **overrides)
        summary.report = load_pretrained(net, state, use_ema=use_ema)
        progress.update()
        save_checkpoint_atomic(net, dst)
        progress.update()
    return summary
