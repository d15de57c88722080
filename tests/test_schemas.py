"""The pydantic row models and the pyarrow schemas that are actually written name the same fields."""
import pytest

from schemas import rows


@pytest.mark.parametrize("model, schema", [
    (rows.Pair, rows.PAIR_SCHEMA), (rows.TestPair, rows.TEST_PAIR_SCHEMA), (rows.TrainRow, rows.TRAIN_SCHEMA),
    (rows.EvalRow, rows.EVAL_SCHEMA), (rows.ProbeRow, rows.PROBE_SCHEMA)])
def test_models_mirror_schemas(model, schema):
    assert list(model.model_fields) == schema.names


def test_example_struct_mirrors_example_model():
    assert [f.name for f in rows.EXAMPLE_TYPE] == list(rows.Example.model_fields)


def test_built_rows_validate_against_the_models(align_synth_version):
    import datasets

    for folder, model in (("train-contrastive", rows.TrainRow), ("eval", rows.EvalRow), ("probe", rows.ProbeRow)):
        for row in datasets.load_from_disk(str(align_synth_version / folder)).select(range(20)):
            model.model_validate(row)
