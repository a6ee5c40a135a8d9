"""Summary: output shapes, parameter counts and receptive fields (size, jump, start)."""

from __future__ import annotations

from core.model import Sequential
from core.summary import ReceptiveField
from core.zoo import lenet5

LENET = lenet5()


def test_lenet_receptive_fields_follow_the_recurrence() -> None:
    summary = Sequential.from_spec(LENET, (1, 28, 28)).summary()
    fields = [(r.field.size[0], r.field.jump[0], r.field.start[0]) for r in summary.rows[:7]]
    assert fields == [
        (5, 1, 0.0),  # conv 5x5 pad 2: centred on pixel 0
        (5, 1, 0.0),
        (6, 2, 0.5),  # pool 2: 5 + 1*1, jump 2, centre between pixels 0 and 1
        (14, 2, 4.5),  # conv 5x5: 6 + 4*2
        (14, 2, 4.5),
        (16, 4, 5.5),  # pool 2: 14 + 1*2
        (16, 4, 5.5),  # flatten keeps the field
    ]
    assert summary.rows[7].field.is_global


def test_parameter_counts_and_output_shapes() -> None:
    summary = Sequential.from_spec(LENET, (1, 28, 28)).summary()
    assert [r.params for r in summary.rows if r.params] == [156, 2416, 48120, 10164, 850]
    assert summary.total_params == 61706 == summary.trainable_params
    assert summary.rows[5].output_shape == (16, 5, 5)
    per_sample = 28 * 28 + 2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 1600 + 400 + 400 + 2 * 120
    per_sample += 2 * 84 + 10
    assert summary.activation_bytes_per_sample == 4 * per_sample


def test_dilation_stride_and_non_square_kernels_per_axis() -> None:
    arch = [
        {"type": "conv2d", "filters": 1, "kernel_size": [3, 1], "dilation": [2, 1], "stride": 2},
        {"type": "conv2d", "filters": 1, "kernel_size": 3, "padding": 1},
        {"type": "global_avgpool2d"},
        {"type": "dense", "units": 2},
    ]
    summary = Sequential.from_spec(arch, (1, 16, 16)).summary()
    first, second = summary.rows[0].field, summary.rows[1].field
    assert (first.size, first.jump, first.start) == ((5, 1), (2, 2), (2.0, 0.0))
    # k_eff 3, jump_in 2: size + 2*2, start + (1 - 1)*2
    assert (second.size, second.jump, second.start) == ((9, 5), (2, 2), (2.0, 0.0))
    assert summary.rows[2].field.is_global


def test_receptive_field_start_goes_negative_with_padding() -> None:
    field = ReceptiveField().through((3, 3), (1, 1), (2, 2), (1, 1))
    assert field.start == (-1.0, -1.0) and field.size == (3, 3)


def test_batchnorm_statistics_count_as_non_trainable() -> None:
    arch = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "batchnorm2d"},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ]
    summary = Sequential.from_spec(arch, (1, 5, 5)).summary()
    assert summary.non_trainable_params == 8
    assert summary.trainable_params == 40 + 8 + 36 * 2 + 2


def test_table_text_has_the_columns_and_totals() -> None:
    text = str(Sequential.from_spec(LENET, (1, 28, 28)).summary())
    lines = text.splitlines()
    assert lines[0].split() == [
        "#",
        "layer",
        "output",
        "shape",
        "params",
        "RF",
        "size",
        "jump",
        "start",
    ]
    assert any("conv2d 16 5×5" in line and "16×10×10" in line and "2,416" in line for line in lines)
    assert "Total params:         61,706" in text
    assert "Forward memory per sample" in text
    assert max(len(line) for line in lines[:15]) <= 100
