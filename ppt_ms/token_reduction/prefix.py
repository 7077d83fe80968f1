"""The tokens in front of the patches (class token, distillation token, registers) and
how token reduction treats them: they are never merged away or pruned.

- ToMe's matching.  With registers, the prefix tokens stay out of it and the patch tokens
  are matched on their own (A = even, B = odd patch positions).  Otherwise every token takes
  part and, as ToMe's code does, the class token (A 0) never merges and nothing merges into
  a distillation token (B 0).  ToMe's code puts the unmerged A tokens back in their order
  only when there is a protected class token; else they stay ranked by their best match.
- PPT's significance.  The class token's attention row scores every token after the class
  token and the registers (a distillation token is scored, as PPT's DeiT code scores it).
  Without a class token PPT is not defined.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class PrefixTokens:
    """Which prefix tokens a ViT has, in timm's order: class token, distillation token, registers."""
    class_token: bool = True
    distilled: bool = False
    registers: int = 0

    def __post_init__(self):
        if self.distilled and not self.class_token:
            raise ValueError("a distillation token needs a class token in front of it")
        if self.distilled and self.registers:
            raise ValueError("a distillation token and register tokens together are not supported")
        if self.registers < 0:
            raise ValueError("reg_tokens must be >= 0, got %d" % self.registers)

    @property
    def count(self) -> int:
        """How many prefix tokens: the first `count` tokens of every sequence."""
        return int(self.class_token) + int(self.distilled) + self.registers

    @property
    def matched_from(self) -> int:
        """Position of the first token ToMe's matching sees (the prefix count with registers, else 0)."""
        return self.count if self.registers else 0

    @property
    def protects_class_token(self) -> bool:
        """Whether the matching itself keeps A 0, the class token, from merging."""
        return self.class_token and self.matched_from == 0

    @property
    def scored_from(self) -> int:
        """Position of the first token PPT scores: after the class token and the registers."""
        return 1 + self.registers
