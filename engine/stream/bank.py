"""The bank: the parts a new part is scored against, and how it changes (docs/method.md §14).

Policies:

* ``pinned``: a fixed set (the recipe's parts, or known-good parts the user picked).
* ``rolling``: the last ``rolling_size`` parts whose verdict was *pass*; the recipe's parts are
  the first of them and roll out as new passing parts come in. A failed part never enters.
* ``both``: the recipe's parts stay (pinned core) and up to ``rolling_size`` recent passing
  parts are added.

The members' features live in preallocated per-layer buffers, so admitting or evicting a part
copies one part's features (O(1) in B) and scoring reads the buffers without stacking them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from engine.config import MuscConfig
from engine.errors import InvalidInputError
from engine.stream.part_readout import PartScore, PartTables, fusion_scales, read_out_part

BANK_POLICIES = ("pinned", "rolling", "both")
# the members' raw scores (B,), salient features (B, D) and per-modality fusion scales
BankReadOut = tuple[torch.Tensor, torch.Tensor, dict[str, float]]
MIN_BANK = 2  # mutual scoring needs at least two references to mean anything


@dataclass
class BankMember:
    """One part of the bank.

    Attributes:
        name: Sample name.
        layers_2d: Per layer (L, C) 2D features, or None.
        layers_3d: Per layer (G, C) 3D features, or None.
        tables: Its own read-out tables against the bank when it entered (for RsCon).
        pinned: Pinned members never roll out.
    """

    name: str
    layers_2d: list[torch.Tensor] | None
    layers_3d: list[torch.Tensor] | None
    tables: PartTables
    pinned: bool = False


class _Buffers:
    """Per-layer (capacity, rows, C) tensors; slot i holds one member's layer."""

    def __init__(self) -> None:
        self.layers: list[torch.Tensor] | None = None

    def put(self, slot: int, layers: list[torch.Tensor] | None, capacity: int) -> None:
        if layers is None:
            return
        if self.layers is None:
            self.layers = [layer.new_zeros((capacity, *layer.shape)) for layer in layers]
        elif self.layers[0].shape[0] <= slot:  # a pin beyond the planned size: grow
            grow = max(capacity, 2 * self.layers[0].shape[0]) - self.layers[0].shape[0]
            self.layers = [torch.cat([b, b.new_zeros((grow, *b.shape[1:]))]) for b in self.layers]
        for buffer, layer in zip(self.layers, layers, strict=True):
            buffer[slot] = layer

    def view(self, count: int) -> list[torch.Tensor] | None:
        return None if self.layers is None else [b[:count] for b in self.layers]


class Bank:
    """The reference parts of a stream, with their features ready for scoring."""

    def __init__(self, members: list[BankMember], policy: str = "pinned", rolling_size: int = 0):
        if policy not in BANK_POLICIES:
            raise InvalidInputError(
                f"bank policy must be one of {', '.join(BANK_POLICIES)}, got {policy!r}."
            )
        if len(members) < MIN_BANK:
            raise InvalidInputError(
                f"a bank needs at least {MIN_BANK} parts, got {len(members)}; make the recipe "
                "from a folder with more passing parts."
            )
        self.policy = policy
        self.rolling_size = 0 if policy == "pinned" else max(0, rolling_size)
        self._members: list[BankMember] = []
        self._rolling_order: deque[str] = deque()  # oldest first
        self._buffers_2d, self._buffers_3d = _Buffers(), _Buffers()
        self._scores: dict[str, PartScore] = {}
        self._scores_key: tuple | None = None
        self._version = 0  # membership changes (the "scaled" fusion depends on all members)
        self._planned = len(members) + self.rolling_size
        for member in members:
            member.pinned = policy != "rolling"
            self._append(member)

    # -- membership ----------------------------------------------------------------------------

    @property
    def members(self) -> list[BankMember]:
        """The members, in slot order."""
        return list(self._members)

    @property
    def names(self) -> list[str]:
        """Names of the members, in slot order."""
        return [m.name for m in self._members]

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, name: object) -> bool:
        return any(m.name == name for m in self._members)

    @property
    def capacity(self) -> int:
        """Pinned members plus the rolling share (``rolling`` policy: the bank size)."""
        pinned = sum(m.pinned for m in self._members)
        return pinned + self.rolling_size

    def offer(self, member: BankMember, verdict: str) -> bool:
        """Offer a scored part to the bank; admitted only by a rolling policy and on *pass*.

        Returns:
            Whether it entered (the oldest rolling member leaves when the bank is full).
        """
        if self.rolling_size == 0 or verdict != "pass" or member.name in self:
            return False
        member.pinned = False
        rolling = [m for m in self._members if not m.pinned]
        if len(rolling) >= self.rolling_size:
            self._remove(self._rolling_order[0])
        self._append(member)
        return True

    def pin(self, member: BankMember) -> None:
        """Pin ``member`` (a new part, or one already in the bank): it never rolls out."""
        existing = next((m for m in self._members if m.name == member.name), None)
        if existing is not None:
            existing.pinned = True
            if existing.name in self._rolling_order:
                self._rolling_order.remove(existing.name)
            return
        member.pinned = True
        self._append(member)

    def unpin(self, name: str) -> None:
        """Unpin a member: it rolls out in turn (rolling policies) or leaves (``pinned``)."""
        member = next((m for m in self._members if m.name == name), None)
        if member is None or not member.pinned:
            return
        if self.rolling_size == 0:
            if len(self._members) <= MIN_BANK:
                raise InvalidInputError(
                    f"cannot unpin {name}: the bank would hold fewer than {MIN_BANK} parts."
                )
            self._remove(name)
            return
        member.pinned = False
        self._rolling_order.appendleft(name)  # first to leave

    def _append(self, member: BankMember) -> None:
        slot = len(self._members)
        capacity = max(slot + 1, self._planned)
        self._members.append(member)
        self._buffers_2d.put(slot, member.layers_2d, capacity)
        self._buffers_3d.put(slot, member.layers_3d, capacity)
        self._version += 1
        if not member.pinned:
            self._rolling_order.append(member.name)

    def _remove(self, name: str) -> None:
        """Drop a member: the last slot moves into its place (one part's copy)."""
        slot = self.names.index(name)
        last = self._members.pop()
        if slot < len(self._members):
            self._members[slot] = last
            self._buffers_2d.put(slot, last.layers_2d, len(self._members))
            self._buffers_3d.put(slot, last.layers_3d, len(self._members))
        if name in self._rolling_order:
            self._rolling_order.remove(name)
        self._scores.pop(name, None)
        self._version += 1

    # -- what scoring reads --------------------------------------------------------------------

    def references(self) -> tuple[list[torch.Tensor] | None, list[torch.Tensor] | None]:
        """Per layer (B, L, C) 2D and (B, G, C) 3D features of the members (views, no copy)."""
        count = len(self._members)
        return self._buffers_2d.view(count), self._buffers_3d.view(count)

    def read_out(self, config: MuscConfig) -> BankReadOut:
        """The members' raw scores (B,), salient features (B, D) and fusion scales at ``config``.

        Each member is read out from its own tables; results are kept until X %, the blur or
        the fusion changes, so a new part costs only the members that entered since.
        """
        key = (config.x_percent, config.blur_sigma, config.fusion, config.eval_size,
               self._version if config.fusion == "scaled" else 0)  # fmt: skip
        if key != self._scores_key:
            self._scores, self._scores_key = {}, key
        scales = fusion_scales([m.tables for m in self._members], config)
        for member in self._members:
            if member.name not in self._scores:
                self._scores[member.name] = read_out_part(member.tables, config, scales)
        scores = [self._scores[m.name] for m in self._members]
        raw = torch.tensor([s.raw for s in scores], dtype=torch.float32)
        return raw.to(scores[0].salient.device), torch.stack([s.salient for s in scores]), scales
