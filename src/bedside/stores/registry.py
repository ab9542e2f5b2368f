"""Pipelines, registered models, versions, gate results and signatures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from bedside.domain.canonical import canonical_json
from bedside.domain.models import (
    GateResult,
    ModelVersion,
    PipelineRecord,
    RegisteredModel,
    Signature,
    VersionState,
)
from bedside.errors import AlreadyExists, NotFound
from bedside.stores.tables import (
    gate_results,
    model_versions,
    pipelines,
    registered_models,
    signatures,
    to_gate,
    to_model,
    to_pipeline,
    to_signature,
    to_version,
    utc,
)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has a primary key
    return int(key[0])


class ModelRegistry:
    """Registered models and their versions, bound to one open connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- pipelines -----------------------------------------------------------------------------

    def add_pipeline(
        self, *, sha256: str, name: str, version: str, content: str, by: str, now: datetime
    ) -> tuple[PipelineRecord, bool]:
        """Store a pipeline file; return it and whether it was new."""
        existing = self.find_pipeline(sha256)
        if existing is not None:
            return existing, False
        self._conn.execute(
            insert(pipelines).values(
                sha256=sha256,
                name=name,
                version=version,
                content=content,
                registered_at=now,
                registered_by=by,
            )
        )
        return PipelineRecord(
            sha256=sha256, name=name, version=version, content=content, registered_at=now
        ), True

    def find_pipeline(self, sha256: str) -> PipelineRecord | None:
        row = (
            self._conn.execute(select(pipelines).where(pipelines.c.sha256 == sha256))
            .mappings()
            .first()
        )
        return None if row is None else to_pipeline(row)

    # -- models --------------------------------------------------------------------------------

    def add_model(
        self, name: str, *, description: str, by: str, pipeline_sha256: str | None, now: datetime
    ) -> RegisteredModel:
        try:
            with self._conn.begin_nested():
                result = self._conn.execute(
                    insert(registered_models).values(
                        name=name,
                        description=description,
                        created_at=now,
                        created_by=by,
                        pipeline_sha256=pipeline_sha256,
                    )
                )
        except DbIntegrityError:
            raise AlreadyExists(f"A model named {name!r} is already registered.") from None
        return RegisteredModel(
            id=_new_id(result),
            name=name,
            description=description,
            created_at=now,
            created_by=by,
            pipeline_sha256=pipeline_sha256,
        )

    def set_model_pipeline(self, model: RegisteredModel, pipeline_sha256: str) -> None:
        self._conn.execute(
            update(registered_models)
            .where(registered_models.c.id == model.id)
            .values(pipeline_sha256=pipeline_sha256)
        )

    def find_model(self, name: str) -> RegisteredModel | None:
        row = (
            self._conn.execute(select(registered_models).where(registered_models.c.name == name))
            .mappings()
            .first()
        )
        return None if row is None else to_model(row)

    def get_model(self, name: str) -> RegisteredModel:
        model = self.find_model(name)
        if model is None:
            known = [m.name for m in self.list_models()]
            hint = f" Registered models: {', '.join(known)}." if known else " None are registered."
            raise NotFound(f"No model named {name!r}.{hint}")
        return model

    def list_models(self) -> list[RegisteredModel]:
        rows = self._conn.execute(select(registered_models).order_by(registered_models.c.name))
        return [to_model(r) for r in rows.mappings()]

    # -- versions ------------------------------------------------------------------------------

    def add_version(
        self,
        model: RegisteredModel,
        *,
        by: str,
        pipeline_sha256: str | None,
        run_id: str | None,
        evidence: dict[str, Any],
        now: datetime,
    ) -> ModelVersion:
        number = (
            int(
                self._conn.execute(
                    select(func.coalesce(func.max(model_versions.c.version), 0)).where(
                        model_versions.c.model_id == model.id
                    )
                ).scalar_one()
            )
            + 1
        )
        history = (VersionState.CANDIDATE,)
        result = self._conn.execute(
            insert(model_versions).values(
                model_id=model.id,
                version=number,
                state=VersionState.CANDIDATE.value,
                history=json.dumps([s.value for s in history]),
                created_at=now,
                created_by=by,
                pipeline_sha256=pipeline_sha256,
                run_id=run_id,
                evidence=canonical_json(evidence),
                state_changed_at=now,
            )
        )
        return ModelVersion(
            id=_new_id(result),
            model_name=model.name,
            version=number,
            state=VersionState.CANDIDATE,
            created_at=now,
            created_by=by,
            pipeline_sha256=pipeline_sha256,
            run_id=run_id,
            evidence=evidence,
            history=history,
            state_changed_at=now,
        )

    def _gates(self, version_id: int) -> tuple[GateResult, ...]:
        rows = self._conn.execute(
            select(gate_results)
            .where(gate_results.c.version_id == version_id)
            .order_by(gate_results.c.gate)
        ).mappings()
        return tuple(to_gate(r) for r in rows)

    def find_version(self, model_name: str, version: int) -> ModelVersion | None:
        row = (
            self._conn.execute(
                select(model_versions)
                .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                .where(registered_models.c.name == model_name, model_versions.c.version == version)
            )
            .mappings()
            .first()
        )
        return None if row is None else to_version(row, model_name, self._gates(row["id"]))

    def get_version(self, model_name: str, version: int) -> ModelVersion:
        found = self.find_version(model_name, version)
        if found is None:
            model = self.get_model(model_name)
            numbers = [v.version for v in self.list_versions(model)]
            raise NotFound(
                f"{model_name} has no version {version} (versions: "
                f"{', '.join(map(str, numbers)) or 'none yet'})."
            )
        return found

    def list_versions(self, model: RegisteredModel) -> list[ModelVersion]:
        rows = (
            self._conn.execute(
                select(model_versions)
                .where(model_versions.c.model_id == model.id)
                .order_by(model_versions.c.version)
            )
            .mappings()
            .all()
        )
        return [to_version(r, model.name, self._gates(r["id"])) for r in rows]

    def shadow_started_at(self, version: ModelVersion) -> datetime | None:
        value = self._conn.execute(
            select(model_versions.c.shadow_started_at).where(model_versions.c.id == version.id)
        ).scalar_one()
        return None if value is None else utc(value)

    def set_state(
        self, version: ModelVersion, state: VersionState, *, now: datetime
    ) -> ModelVersion:
        history = (*version.history, state)
        values: dict[str, Any] = {
            "state": state.value,
            "state_changed_at": now,
            "history": json.dumps([s.value for s in history]),
        }
        if state is VersionState.SHADOW:
            values["shadow_started_at"] = now
        self._conn.execute(
            update(model_versions).where(model_versions.c.id == version.id).values(**values)
        )
        return self.get_version(version.model_name, version.version)

    def set_evidence(self, version: ModelVersion, evidence: dict[str, Any]) -> None:
        self._conn.execute(
            update(model_versions)
            .where(model_versions.c.id == version.id)
            .values(evidence=canonical_json(evidence))
        )

    # -- gates ---------------------------------------------------------------------------------

    def put_gate_result(
        self,
        version: ModelVersion,
        *,
        gate: str,
        passed: bool,
        details: dict[str, Any],
        by: str,
        now: datetime,
    ) -> GateResult:
        """Record a gate's result, replacing an earlier result for the same gate."""
        existing = self._conn.execute(
            select(gate_results.c.id).where(
                gate_results.c.version_id == version.id, gate_results.c.gate == gate
            )
        ).scalar()
        values = {
            "passed": passed,
            "details": canonical_json(details),
            "recorded_at": now,
            "recorded_by": by,
        }
        if existing is None:
            self._conn.execute(
                insert(gate_results).values(version_id=version.id, gate=gate, **values)
            )
        else:
            self._conn.execute(
                update(gate_results).where(gate_results.c.id == existing).values(**values)
            )
        return GateResult(
            gate=gate, passed=passed, details=details, recorded_at=now, recorded_by=by
        )

    # -- signatures ----------------------------------------------------------------------------

    def add_signature(self, version: ModelVersion, signature: Signature) -> Signature:
        """Store a sealed signature on ``version``; return it with its id."""
        try:
            with self._conn.begin_nested():
                result = self._conn.execute(
                    insert(signatures).values(
                        version_id=version.id,
                        purpose=signature.purpose.value,
                        username=signature.username,
                        printed_name=signature.printed_name,
                        role=signature.role,
                        meaning=signature.meaning.value,
                        signed_at=signature.signed_at,
                        record_sha256=signature.record_sha256,
                        signature_hmac=signature.signature_hmac,
                        comment=signature.comment,
                    )
                )
        except DbIntegrityError:
            raise AlreadyExists(
                f"User {signature.username!r} already signed {version.ref} for "
                f"{signature.purpose.value}."
            ) from None
        return replace(signature, id=_new_id(result))

    def list_signatures(self, version: ModelVersion) -> list[Signature]:
        rows = self._conn.execute(
            select(signatures)
            .where(signatures.c.version_id == version.id)
            .order_by(signatures.c.id)
        ).mappings()
        return [to_signature(r, version.model_name, version.version) for r in rows]
