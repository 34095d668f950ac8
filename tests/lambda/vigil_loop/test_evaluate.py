"""The evaluate step reads comparison.json from the job's output.tar.gz (SageMaker
uploads SM_OUTPUT_DATA_DIR as <job>/output/output.tar.gz: sagemaker-training-toolkit
ENVIRONMENT_VARIABLES.md)."""

from __future__ import annotations

import pytest
from vigil_loop.evaluate import ComparisonError, evaluate


def test_the_comparison_and_the_model_archive_are_returned(job_output, comparison, bucket, job):
    s3 = job_output(comparison(candidate={"total": {"recall": 0.95}}))
    result = evaluate(s3, bucket, job)
    assert result["candidate"]["total"]["recall"] == 0.95
    assert result["current"]["sha256"] == "a" * 64
    assert result["model_data_url"] == f"s3://{bucket}/models/{job}/output/model.tar.gz"
    assert result["job_name"] == job


def test_an_output_without_the_comparison_is_a_clear_error(job_output, bucket, job):
    s3 = job_output(None)
    with pytest.raises(ComparisonError, match="holds no comparison.json"):
        evaluate(s3, bucket, job)


def test_a_comparison_missing_a_figure_names_it(job_output, comparison, bucket, job):
    bad = comparison()
    del bad["candidate"]["by_label"]["person"]["false_alerts_per_hour"]
    with pytest.raises(ComparisonError, match=r"candidate\.by_label\.person: missing false_alerts_per_hour"):
        evaluate(job_output(bad), bucket, job)


def test_a_first_model_has_no_current_one(job_output, comparison, bucket, job):
    assert evaluate(job_output(comparison(no_current=True)), bucket, job)["current"] is None
