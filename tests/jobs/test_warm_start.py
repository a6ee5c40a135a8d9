"""A spec's ``init_from`` at submit: checked against the source version in the model repository
and pinned to a concrete version (`jobs.warm_start`), also through `JobQueue.submit` over a
real Redis; every refusal names its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.repository import ModelRepository
from jobs import rq_layout
from jobs.errors import InvalidSpec
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from jobs.spec import parse_spec
from jobs.warm_start import pin_init_from, resolve_init_from
from tests.support.published import SOURCE_ARCHITECTURE, publish_untrained


def _spec(init_from: dict[str, Any], classes: int = 10, **overrides: Any) -> dict[str, Any]:
    architecture = [dict(layer) for layer in SOURCE_ARCHITECTURE]
    architecture[-1]["units"] = classes
    spec: dict[str, Any] = {
        "name": "tuned",
        "dataset": {"name": "digits"},
        "architecture": architecture,
        "epochs": 1,
        "init_from": init_from,
    }
    spec.update(overrides)
    return spec


@pytest.fixture()
def repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "models")


def _problems(spec: dict[str, Any], repository: ModelRepository | None) -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        pin_init_from(parse_spec(spec), repository)
    return caught.value.errors


def test_without_a_version_the_newest_is_pinned(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    publish_untrained(repository.root, seed=1)
    pinned = pin_init_from(parse_spec(_spec({"model": "source"})), repository)
    assert pinned.init_from is not None and pinned.init_from.version == 2
    assert pinned.payload()["init_from"] == {
        "model": "source",
        "version": 2,
        "freeze": [],
        "reset_head": False,
    }


def test_a_named_version_is_kept_and_pinning_is_idempotent(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    publish_untrained(repository.root, seed=1)
    spec = parse_spec(_spec({"model": "source", "version": 1, "freeze": [0]}))
    pinned = pin_init_from(spec, repository)
    assert pinned == spec
    assert pin_init_from(parse_spec(pinned.payload()), repository) == pinned


def test_a_spec_without_init_from_is_left_alone(repository: ModelRepository) -> None:
    spec = parse_spec({k: v for k, v in _spec({}).items() if k != "init_from"})
    assert pin_init_from(spec, repository) is spec
    assert pin_init_from(spec, None) is spec


def test_an_unpublished_model_names_init_from_model_and_lists_what_is(
    repository: ModelRepository,
) -> None:
    publish_untrained(repository.root, "digits")
    assert _problems(_spec({"model": "cats"}), repository) == [
        "init_from.model: no published model 'cats' (published: digits)"
    ]


def test_a_missing_version_names_init_from_version(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    assert _problems(_spec({"model": "source", "version": 4}), repository) == [
        "init_from.version: model 'source' has no version 4 (1)"
    ]


def test_a_damaged_version_names_init_from_version_without_the_server_path(
    repository: ModelRepository,
) -> None:
    publish_untrained(repository.root)
    (repository.path("source", 1) / "model.json").write_text("{ not json")
    (problem,) = _problems(_spec({"model": "source"}), repository)
    assert problem.startswith("init_from.version: cannot be used: source/1/model.json: not valid")
    assert str(repository.root) not in problem


def test_a_head_of_another_class_count_needs_reset_head(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    spec = _spec({"model": "source"}, classes=5, dataset={"name": "npz", "path": "five.npz"})
    assert _problems(spec, repository) == [
        "architecture.4: dense parameters weight (64, 5), bias (5,) here, weight (64, 10), "
        "bias (10,) in source version 1"
    ]
    spec["init_from"]["reset_head"] = True
    assert pin_init_from(parse_spec(spec), repository).init_from is not None


def test_another_input_size_names_the_layer_it_breaks_and_both_inputs(
    repository: ModelRepository,
) -> None:
    publish_untrained(repository.root)
    spec = _spec({"model": "source"}, dataset={"name": "mnist-5k"})
    assert _problems(spec, repository) == [
        "architecture.4: dense parameters weight (784, 10), bias (10,) here, weight (64, 10), "
        "bias (10,) in source version 1 (input (1, 28, 28) here, (1, 8, 8) in source version 1)"
    ]


def test_freeze_entries_are_checked_against_the_architecture(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    assert _problems(_spec({"model": "source", "freeze": [1, "batchnorm2d"]}), repository) == [
        "init_from.freeze.0: layer 1 (relu) has no parameters to freeze",
        "init_from.freeze.1: the architecture has no batchnorm2d layer with parameters",
    ]


def test_a_freeze_index_past_the_architecture_is_refused_by_the_spec_itself() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(_spec({"model": "source", "freeze": [5]}))
    assert caught.value.errors == [
        "init_from.freeze.0: no layer 5: the architecture has layers 0..4"
    ]


def test_a_freeze_entry_that_is_no_index_nor_layer_type_is_refused() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(_spec({"model": "source", "freeze": [True, "conv"]}))
    assert [e.split(" is neither")[0] for e in caught.value.errors] == [
        "init_from.freeze.0: True",
        "init_from.freeze.1: 'conv'",
    ]


def test_without_the_repository_a_version_is_required() -> None:
    assert _problems(_spec({"model": "source"}), None) == [
        "init_from.version: required here: this submitter cannot read the model repository to "
        "pin the newest version (set CNN_MODELS_DIR, or submit through the server)"
    ]
    spec = parse_spec(_spec({"model": "source", "version": 3}))
    assert pin_init_from(spec, None) == spec


def test_resolving_checks_the_actual_input_shape(repository: ModelRepository) -> None:
    publish_untrained(repository.root)
    spec = parse_spec(_spec({"model": "source"}, dataset={"name": "npz", "path": "x.npz"}))
    resolved = resolve_init_from(spec, repository, None)  # unknown: the source's is assumed
    assert resolved.plan.copied == (0, 4)
    with pytest.raises(InvalidSpec) as caught:
        resolve_init_from(spec, repository, (3, 8, 8))
    assert caught.value.errors[0].startswith("architecture.0: conv2d parameters weight (4, 3, 3")


def test_submit_pins_the_version_into_the_queued_payload(
    redis_url: str, repository: ModelRepository
) -> None:
    publish_untrained(repository.root)
    publish_untrained(repository.root, seed=1)
    settings = QueueSettings.from_env({}, redis_url=redis_url)
    with JobQueue.connect(settings, models=repository) as queue:
        job_id = queue.submit(_spec({"model": "source", "freeze": ["conv2d"]}))
        raw = queue._redis.hget(f"rq:job:{job_id}", "data")
    _, (payload,) = rq_layout.decode_call(raw)  # type: ignore[arg-type]
    assert payload["init_from"] == {
        "model": "source",
        "version": 2,
        "freeze": ["conv2d"],
        "reset_head": False,
    }


def test_submit_refuses_a_bad_init_from_and_queues_nothing(
    redis_url: str, repository: ModelRepository
) -> None:
    settings = QueueSettings.from_env({}, redis_url=redis_url)
    with JobQueue.connect(settings, models=repository) as queue:
        with pytest.raises(InvalidSpec, match=r"init_from\.model: no published model 'source'"):
            queue.submit(_spec({"model": "source"}))
        assert queue.list() == []
