"""timm-style RandAugment strings ('rand-m9-mstd0.5-inc1') mapped onto mindspore.dataset.vision.RandAugment.

timm scales every op's strength by magnitude / 10. MindSpore's RandAugment (the torchvision
algorithm) scales it by magnitude / (num_magnitude_bins - 1), so 11 bins reproduce timm's
scale exactly: 'm9' -> 0.9 of each op's maximum in both.

Approximations versus timm (documented, not hidden):
- mstd (Gaussian noise on the magnitude per op) is not supported by MindSpore: the
  magnitude is fixed at m. The value is parsed and accepted.
- timm applies each chosen op with probability 0.5 and draws from its own op list
  (with SolarizeAdd and the 'inc' increasing variants); MindSpore always applies its
  num_ops ops, drawn from the torchvision list (which includes Identity).
- timm picks bilinear or bicubic at random for geometric ops; here bicubic is used.
- the fill colour for geometric ops is the data mean, as timm's DeiT recipe does.
"""
from dataclasses import dataclass

import mindspore.dataset.vision as vision

TIMM_MAX_MAGNITUDE = 10


@dataclass(frozen=True)
class RandAugmentSpec:
    num_ops: int = 2
    magnitude: int = 9
    magnitude_std: float = 0.0
    increasing: bool = False


def _parse_section(spec, section, parsed):
    """Update ``parsed`` (a dict of RandAugmentSpec fields) from one '-'-separated section."""
    try:
        if section.startswith('mstd'):
            parsed['magnitude_std'] = float(section[4:])
        elif section.startswith('inc'):
            parsed['increasing'] = bool(int(section[3:]))
        elif section.startswith('m'):
            parsed['magnitude'] = int(section[1:])
        elif section.startswith('n'):
            parsed['num_ops'] = int(section[1:])
        else:
            raise ValueError(f"unknown section '{section}'")
    except ValueError as error:
        raise ValueError(f"cannot parse auto_augment '{spec}' at '{section}': {error} "
                         "(supported: rand-m<int>-n<int>-mstd<float>-inc<0|1>)") from None


def parse_rand_augment(spec):
    """'rand-m9-mstd0.5' -> RandAugmentSpec(num_ops=2, magnitude=9, magnitude_std=0.5)."""
    sections = spec.split('-')
    if sections[0] != 'rand':
        raise ValueError(f"auto_augment '{spec}' is not supported: only timm RandAugment strings "
                         "'rand-m<N>-...' are (set auto_augment to null to disable)")
    parsed = {}
    for section in sections[1:]:
        _parse_section(spec, section, parsed)
    result = RandAugmentSpec(**parsed)
    if not 0 <= result.magnitude <= TIMM_MAX_MAGNITUDE:
        raise ValueError(f"auto_augment '{spec}': magnitude must be in [0, {TIMM_MAX_MAGNITUDE}]")
    if result.num_ops < 1:
        raise ValueError(f"auto_augment '{spec}': the number of ops must be >= 1")
    return result


def build_rand_augment(spec, mean):
    """MindSpore RandAugment op (HWC uint8 in, HWC uint8 out) for a timm RandAugment string.

    mean: per-channel data mean in [0, 1], used as the fill colour.
    """
    parsed = parse_rand_augment(spec)
    fill = tuple(int(round(channel * 255)) for channel in mean)
    return vision.RandAugment(num_ops=parsed.num_ops, magnitude=parsed.magnitude,
                              num_magnitude_bins=TIMM_MAX_MAGNITUDE + 1,
                              interpolation=vision.Inter.BICUBIC, fill_value=fill)
