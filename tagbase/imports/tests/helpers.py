"""Plain builders for import tests: run a file through the real pipeline, in process."""

from __future__ import annotations

from tagbase.accounts.actors import Actor
from tagbase.imports import pipeline, services
from tagbase.imports.models import ImportJob


def run_import(
    data: bytes | str,
    *,
    encoding_of_str: str = "utf-8",
    file_name: str = "f.csv",
    **request: object,
) -> ImportJob:
    """Upload ``data`` as a file and run the pipeline to its resting state."""
    raw = data.encode(encoding_of_str) if isinstance(data, str) else data
    req = services.ImportRequest(**request)  # type: ignore[arg-type]
    job = services.start_import(
        [raw], file_name, req, actor=Actor.system("test"), source="cli", enqueue=False
    )
    done = pipeline.run_import_job(job.pk, owner="test")
    assert done is not None
    return done


def identity_holds(job: ImportJob) -> bool:
    """The accounting identity (docs/imports.md): every data row has exactly one outcome."""
    applied = job.already_member + job.added + job.not_member + job.removed
    return job.rows_read == (
        job.blank + job.invalid + job.duplicate_in_file + job.not_found + job.ambiguous + applied
    )
