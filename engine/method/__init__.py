"""The paper's stages as pure functions on tensors (see docs/method.md).

SNAMD (:mod:`.snamd`), mutual scoring and the interval average (:mod:`.mutual_scoring`),
RsCon (:mod:`.rscon`), cross-modal enhancement (:mod:`.cae`), anomaly maps (:mod:`.maps`),
3D point groups and IPG (:mod:`.point_groups`) and the subset split (:mod:`.subsets`).
"""
