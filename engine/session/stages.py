"""The stage spec: the one declaration of what each stage reads and what a change recomputes.

Everything else is derived from :data:`STAGES` and :data:`RUN_SETTINGS`: what
:meth:`InspectionSession.update` drops, the session-cache key, the cost shown next to each
parameter in the app, and the labels of progress events and timings. See docs/method.md,
"Parameters and what they recompute" (a test keeps that table equal to :func:`parameter_table`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum, IntEnum

from engine.config import MuscConfig


class Stage(str, Enum):
    """A cached stage of a session; the value is its label in progress events and timings."""

    LOAD_3D = "load 3D"
    EXTRACT_2D = "extract 2D"
    AGGREGATE_2D = "aggregate 2D"
    GROUP_3D = "group 3D"
    EXTRACT_3D = "extract 3D"
    SCORE_2D = "mutual scoring 2D"
    SCORE_3D = "mutual scoring 3D"
    SCORE_CAE = "mutual scoring 2D+3D with CAE"
    READ_OUT = "read-out"

    def __str__(self) -> str:
        return self.value

    # hash like the label, so that a stage and its label are the same key (cache files, tests)
    __hash__ = str.__hash__


class Cost(IntEnum):
    """What changing a parameter costs, cheapest first (the most expensive stage it drops)."""

    NONE = 0  # a run setting: changes how stages run, never what they compute
    LIVE = 1  # read-out only: interval average, maps, fusion, RsCon from cached tables
    RESCORE = 2  # mutual scoring (and SNAMD-2D) again on cached features
    REGROUP = 3  # 3D point grouping and everything after it
    REEXTRACT = 4  # a backbone runs again


def _always(modality: str, cae: bool) -> bool:
    return True


@dataclass(frozen=True)
class StageSpec:
    """One stage of the method as a session runs it.

    Attributes:
        cost: Cost of recomputing this stage (and so of changing a field it reads).
        reads: Config fields the stage reads directly.
        consumes: Stages whose output it reads.
        consumes_if: (stage, boolean config field): consumed only while that field is true.
        model_fields: The reads that change the backbone itself (it is rebuilt).
        substages: Finer timings the stage records; reset whenever it runs again.
        needed: (modality, uses CAE) -> whether a run with that setting uses the stage.
    """

    cost: Cost
    reads: frozenset[str]
    consumes: tuple[Stage, ...] = ()
    consumes_if: tuple[tuple[Stage, str], ...] = ()
    model_fields: frozenset[str] = frozenset()
    substages: tuple[str, ...] = ()
    needed: Callable[[str, bool], bool] = field(default=_always)


def _with_2d(modality: str, cae: bool) -> bool:
    return "2d" in modality


def _with_3d(modality: str, cae: bool) -> bool:
    return "3d" in modality


STAGES: dict[Stage, StageSpec] = {
    # XYZ -> foreground clouds on the map grid, FPS centres, KNN, curvatures, 3-NN weights
    Stage.LOAD_3D: StageSpec(
        Cost.REEXTRACT,
        frozenset({"remove_background", "num_groups", "group_size", "eval_size"}),
        substages=("3D read + background removal", "3D FPS + KNN + curvature"),
        needed=_with_3d,
    ),
    # images -> backbone tokens; the 3D foreground is read only to black out the RGB background
    Stage.EXTRACT_2D: StageSpec(
        Cost.REEXTRACT,
        frozenset({"backbone", "weights", "image_size", "layers", "black_rgb_background"}),
        consumes_if=((Stage.LOAD_3D, "black_rgb_background"),),
        model_fields=frozenset({"backbone", "weights", "image_size", "layers"}),
        needed=_with_2d,
    ),
    # SNAMD on the 2D tokens
    Stage.AGGREGATE_2D: StageSpec(
        Cost.RESCORE, frozenset({"r_list"}), consumes=(Stage.EXTRACT_2D,), needed=_with_2d
    ),
    # IPG point groups
    Stage.GROUP_3D: StageSpec(
        Cost.REGROUP,
        frozenset({"k_iter", "c_thr", "ipg_variant"}),
        consumes=(Stage.LOAD_3D,),
        needed=_with_3d,
    ),
    # point backbone + SNAMD-3D (which reads C_thr for its high-curvature groups)
    Stage.EXTRACT_3D: StageSpec(
        Cost.REEXTRACT,
        frozenset({"backbone_3d", "weights_3d", "bn_stats", "r_list", "c_thr"}),
        consumes=(Stage.GROUP_3D,),
        model_fields=frozenset({"backbone_3d", "weights_3d", "bn_stats"}),
        substages=("3D backbone", "3D SNAMD"),
        needed=_with_3d,
    ),
    # mutual scoring of each modality apart (no CAE) into sorted distance tables
    Stage.SCORE_2D: StageSpec(
        Cost.RESCORE,
        frozenset({"subsets", "seed"}),
        consumes=(Stage.AGGREGATE_2D,),
        needed=lambda modality, cae: "2d" in modality and not cae,
    ),
    # the 3D-only sample list differs from the 2D one, so the 3D tables depend on the modality
    Stage.SCORE_3D: StageSpec(
        Cost.RESCORE,
        frozenset({"subsets", "seed", "modality"}),
        consumes=(Stage.EXTRACT_3D,),
        needed=lambda modality, cae: "3d" in modality and not cae,
    ),
    # both modalities scored together with cross-modal enhancement
    Stage.SCORE_CAE: StageSpec(
        Cost.RESCORE,
        frozenset({"subsets", "seed", "cae"}),
        consumes=(Stage.AGGREGATE_2D, Stage.EXTRACT_3D, Stage.LOAD_3D),
        needed=lambda modality, cae: cae,
    ),
    # interval average, maps, blur, fusion, RsCon: always recomputed, in milliseconds
    Stage.READ_OUT: StageSpec(
        Cost.LIVE,
        frozenset({"x_percent", "rscon_window", "blur_sigma", "fusion", "modality", "eval_size"}),
        consumes=(Stage.SCORE_2D, Stage.SCORE_3D, Stage.SCORE_CAE),
    ),
}

# Fields that change how the stages run but not what they compute. Changing ``device`` moves the
# cached tensors to the new device (same results up to float tolerance), never recomputes them;
# ``precision`` applies from the next extraction on (features agree within bf16 tolerance).
RUN_SETTINGS: dict[str, str] = {
    "device": "moves the cached results to the new device",
    "batch_size": "images per backbone forward pass",
    "chunk_mib": "memory bound of one mutual-scoring block",
    "precision": "bf16 or fp32 backbone arithmetic; features agree within float tolerance",
}

# The stages :meth:`InspectionSession.run` caches, in the order it computes them.
CACHED_STAGES: tuple[Stage, ...] = tuple(s for s in STAGES if s is not Stage.READ_OUT)

COST_WORDS = {
    Cost.NONE: "recomputes nothing",
    Cost.LIVE: "live: read-out only",
    Cost.RESCORE: "re-runs mutual scoring",
    Cost.REGROUP: "re-groups 3D points",
    Cost.REEXTRACT: "re-extracts features",
}


def consumed(stage: Stage, config: MuscConfig) -> tuple[Stage, ...]:
    """The stages whose output ``stage`` reads under ``config``."""
    spec = STAGES[stage]
    extra = tuple(s for s, flag in spec.consumes_if if getattr(config, flag))
    return spec.consumes + extra


def stale_stages(changed: set[str], config: MuscConfig) -> set[Stage]:
    """The stages a change of the fields ``changed`` invalidates under the new ``config``."""
    direct = [stage for stage, spec in STAGES.items() if spec.reads & changed]
    return set().union(*(stale_stages_of(stage, config) for stage in direct))


def field_stages(name: str) -> list[Stage]:
    """The stages that read config field ``name`` directly."""
    return [stage for stage, spec in STAGES.items() if name in spec.reads]


def field_cost(name: str) -> Cost:
    """What changing config field ``name`` costs.

    The most expensive of the stages that read it, leaving out a stage that is downstream of
    another one reading it (its cost is implied: C_thr re-groups, and re-grouping re-extracts
    the 3D features, so C_thr is a re-grouping change).
    """
    direct = field_stages(name)
    everything = MuscConfig(black_rgb_background=True)
    roots = [
        stage
        for stage in direct
        if not any(
            stage in stale_stages_of(other, everything) for other in direct if other != stage
        )
    ]
    return max((STAGES[s].cost for s in roots), default=Cost.NONE)


def stale_stages_of(stage: Stage, config: MuscConfig) -> set[Stage]:
    """``stage`` and every stage downstream of it under ``config``."""
    stale = {stage}
    while True:
        more = {s for s in STAGES if s not in stale and set(consumed(s, config)) & stale}
        if not more:
            return stale
        stale |= more


def model_fields(stage: Stage) -> frozenset[str]:
    """The fields whose change rebuilds the backbone of ``stage``."""
    return STAGES[stage].model_fields


def key_fields() -> frozenset[str]:
    """Config fields that change a cached stage: the session-cache key is built from these."""
    return frozenset().union(*(STAGES[s].reads for s in CACHED_STAGES))


def parameter_table() -> str:
    """Markdown table of every parameter, the stages it invalidates and its cost.

    The read-out runs after every change, so it is listed only where a field reads it. Stages
    invalidated only while a condition holds (``consumes_if``) are named with that condition.
    """
    lines = [
        "| parameter | read by | also invalidates | cost |",
        "|---|---|---|---|",
    ]
    flags = {flag for spec in STAGES.values() for _, flag in spec.consumes_if}
    plain, conditional = MuscConfig(), MuscConfig(**{flag: True for flag in flags})
    for f in fields(MuscConfig):
        direct = field_stages(f.name)
        always = stale_stages({f.name}, plain) - set(direct)
        sometimes = stale_stages({f.name}, conditional) - set(direct) - always
        later = ", ".join(s for s in CACHED_STAGES if s in always) or "–"
        if sometimes:
            names = ", ".join(s for s in CACHED_STAGES if s in sometimes)
            later += f"; with {' or '.join(f'`{x}`' for x in sorted(flags))}: {names}"
        read_by = ", ".join(direct) or f"run setting ({RUN_SETTINGS[f.name]})"
        lines.append(f"| `{f.name}` | {read_by} | {later} | {COST_WORDS[field_cost(f.name)]} |")
    return "\n".join(lines)
