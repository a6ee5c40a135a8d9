"""Model summary: per layer output shape, parameters and receptive field in input pixels.

Receptive field (per axis, in input pixels) of one output unit, for a layer with kernel k,
stride s, padding p (top/left), dilation d, given the previous layer's (size, jump, start):

    k_eff     = d * (k - 1) + 1
    jump_out  = jump_in * s
    size_out  = size_in + (k_eff - 1) * jump_in
    start_out = start_in + ((k_eff - 1) / 2 - p) * jump_in

``start`` is the centre of the first output unit's field (input pixel 0 has centre 0; a
negative start means the field hangs into the padding). The input itself has size 1, jump 1,
start 0. Layers without a spatial window (activations, dropout, batchnorm, flatten) keep the
values; dense and global pooling see the whole input ("global").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.estimate import ModelEstimate
    from core.layers import Spatial
    from core.model import Sequential

GLOBAL_TYPES = frozenset({"dense", "global_avgpool2d", "global_maxpool2d"})


@dataclass(frozen=True)
class ReceptiveField:
    """Per-axis (h, w) receptive field; ``is_global`` once a layer mixes all positions."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[float, float] = (0.0, 0.0)
    is_global: bool = False

    def through(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> ReceptiveField:
        """The field after a window layer (see the module docstring for the formulas)."""
        size, jump, start = [], [], []
        for axis in range(2):
            k_eff = dilation[axis] * (kernel[axis] - 1) + 1
            size.append(self.size[axis] + (k_eff - 1) * self.jump[axis])
            start.append(self.start[axis] + ((k_eff - 1) / 2 - padding[axis]) * self.jump[axis])
            jump.append(self.jump[axis] * stride[axis])
        return ReceptiveField(
            (size[0], size[1]), (jump[0], jump[1]), (start[0], start[1]), self.is_global
        )


@dataclass(frozen=True)
class SummaryRow:
    index: int
    type_name: str
    output_shape: tuple[int, ...]
    params: int  # trainable
    buffers: int  # non-trainable values (e.g. batchnorm running statistics)
    field: ReceptiveField
    details: str = ""


def _pair(values: tuple[Any, ...] | list[Any]) -> str:
    a, b = values
    fa = _num(a)
    return fa if a == b else f"{fa}×{_num(b)}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@dataclass(frozen=True)
class Summary:
    """The table of :func:`summarize`; ``str(summary)`` renders it for a terminal."""

    input_shape: tuple[int, int, int]
    rows: list[SummaryRow]
    itemsize: int

    @property
    def trainable_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def non_trainable_params(self) -> int:
        return sum(r.buffers for r in self.rows)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def activation_bytes_per_sample(self) -> int:
        """Forward memory per sample: the input plus every layer's output, at the model dtype."""
        count = 1
        for v in self.input_shape:
            count *= v
        for row in self.rows:
            n = 1
            for v in row.output_shape:
                n *= v
            count += n
        return count * self.itemsize

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for APIs)."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "index": r.index,
                    "type": r.type_name,
                    "output_shape": list(r.output_shape),
                    "params": r.params + r.buffers,
                    "trainable_params": r.params,
                    "receptive_field": None
                    if r.field.is_global
                    else {
                        "size": list(r.field.size),
                        "jump": list(r.field.jump),
                        "start": list(r.field.start),
                    },
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "activation_bytes_per_sample": self.activation_bytes_per_sample,
        }

    def __str__(self) -> str:
        header = ("#", "layer", "output shape", "params", "RF size", "jump", "start")
        table: list[tuple[str, ...]] = [
            ("", "input", "×".join(map(str, self.input_shape)), "", "1", "1", "0")
        ]
        for r in self.rows:
            if r.field.is_global:
                rf = ("global", "—", "—")
            else:
                rf = (_pair(r.field.size), _pair(r.field.jump), _pair(r.field.start))
            name = r.type_name + (f" {r.details}" if r.details else "")
            table.append(
                (
                    str(r.index),
                    name,
                    "×".join(map(str, r.output_shape)),
                    f"{r.params + r.buffers:,}",
                    *rf,
                )
            )
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
        right = {0, 3, 4, 5, 6}

        def fmt(cells: tuple[str, ...]) -> str:
            parts = [
                c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                for i, c in enumerate(cells)
            ]
            return "  ".join(parts).rstrip()

        rule = "─" * len(fmt(tuple("" for _ in header)).ljust(sum(widths) + 2 * (len(widths) - 1)))
        lines = [fmt(header), rule, *(fmt(row) for row in table), rule]
        lines.append(f"Total params:         {self.total_params:,}")
        lines.append(f"Trainable params:     {self.trainable_params:,}")
        lines.append(f"Non-trainable params: {self.non_trainable_params:,}")
        lines.append(
            f"Forward memory per sample (activations): {_bytes(self.activation_bytes_per_sample)}"
        )
        lines.append(f"Parameter memory:     {_bytes(self.total_params * self.itemsize)}")
        lines.append(
            "RF = receptive field in input pixels: size, jump (stride between neighbouring "
            "units), start (centre of the first unit); h×w when the axes differ."
        )
        return "\n".join(lines)


def _layer_details(cfg: dict[str, Any]) -> str:
    """Short option text: ``16 3×3 same`` for a conv, ``2×2`` for a pool, ``10`` for dense."""
    parts: list[str] = []
    if "filters" in cfg:
        parts.append(str(cfg["filters"]))
    if "units" in cfg:
        parts.append(str(cfg["units"]))
    for key in ("kernel_size", "size"):
        if key in cfg:
            k = cfg[key]
            parts.append(f"{k}×{k}" if isinstance(k, int) else "×".join(map(str, k)))
    stride = cfg.get("stride")
    if stride not in (None, 1, [1, 1]) and stride != cfg.get("size"):
        parts.append(f"/{stride}" if isinstance(stride, int) else "/" + "×".join(map(str, stride)))
    padding = cfg.get("padding")
    if padding not in (None, 0, "valid"):
        parts.append(f"pad {padding}" if not isinstance(padding, str) else padding)
    if cfg.get("dilation") not in (None, 1, [1, 1]):
        parts.append(f"dil {cfg['dilation']}")
    if cfg.get("groups") not in (None, 1):
        parts.append(f"groups {cfg['groups']}")
    for key in ("rate", "alpha"):
        if key in cfg:
            parts.append(f"{key} {cfg[key]}")
    return " ".join(parts)


@dataclass(frozen=True)
class _LayerFacts:
    type_name: str
    output_shape: tuple[int, ...]
    params: int
    buffers: int
    spatial: Spatial | None
    details: str


def _details_of(config: Callable[[], dict[str, Any]]) -> str:
    try:
        return _layer_details(config())
    except (TypeError, ValueError):
        return ""


def summarize(model: Sequential) -> Summary:
    """Build the :class:`Summary` of a built model."""
    facts = [
        _LayerFacts(
            layer.type_name,
            shape,
            sum(p.size for p in layer.parameters().values()),
            sum(int(b.size) for b in layer.buffers().values()),
            layer.spatial(),
            _details_of(layer.config),
        )
        for layer, shape in zip(model.layers, model.shapes, strict=True)
    ]
    return _summary(model.input_shape, facts, model.dtype.itemsize)


def summarize_estimate(estimate: ModelEstimate) -> Summary:
    """The :class:`Summary` of the model an estimate sizes (equal to the built model's)."""
    facts = [
        _LayerFacts(
            e.type_name,
            e.output_shape,
            e.parameters,
            e.buffers,
            e.spatial,
            _details_of(e.config.copy),
        )
        for e in estimate.layers
    ]
    return _summary(estimate.input_shape, facts, estimate.itemsize)


def _summary(
    input_shape: tuple[int, int, int], layers: list[_LayerFacts], itemsize: int
) -> Summary:
    rows = []
    field = ReceptiveField()
    for index, layer in enumerate(layers):
        spatial = layer.spatial
        if layer.type_name in GLOBAL_TYPES:
            field = ReceptiveField(field.size, field.jump, field.start, True)
        elif spatial is not None and not field.is_global:
            field = field.through(
                tuple(spatial.kernel),  # type: ignore[arg-type]
                tuple(spatial.stride),  # type: ignore[arg-type]
                tuple(spatial.padding),  # type: ignore[arg-type]
                tuple(spatial.dilation),  # type: ignore[arg-type]
            )
        rows.append(
            SummaryRow(
                index,
                layer.type_name,
                layer.output_shape,
                layer.params,
                layer.buffers,
                field,
                layer.details,
            )
        )
    return Summary(input_shape, rows, itemsize)
