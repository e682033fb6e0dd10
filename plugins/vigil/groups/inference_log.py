"""Each model group's inference log: the table ``inference_log_<slug>`` plus Parquet copies.

One row per prediction: request id, model version, whether it was *served* (the member the
traffic split routed the request to) or a *shadow* prediction, the inputs, the output, the
score, the SHAP values as JSON, when it was scored, and (later) the label. The table is created
with the group; its name is built from the sanitised slug and always quoted with
``psycopg.sql.Identifier``; values travel as parameters or through COPY, never in SQL text.

Scoring a batch (:func:`score_batch`) is idempotent: rows are keyed by (request id, model
version), so re-running a batch replaces its rows, and its Parquet partition is keyed by the run.
Deleting a group archives the whole table to Parquet (kind ``inference_log_archive``) before
dropping it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from psycopg import sql
from sqlalchemy.engine import Engine

from vigil.groups.log_table import (
    InferenceError,
    _raw,
    create_table,
    ensure_columns,
    read_log,
    table_exists,
    table_ident,
    write_rows,
)
from vigil.registry.versions import RunRef
from vigil.storage.parquet_store import ParquetStore, default_store

if TYPE_CHECKING:
    from vigil.groups.records import Group

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- scoring
@dataclass
class LoadedMember:
    version_id: int
    ref: str
    estimator: Any
    meta: dict[str, Any]
    explainer: Any


def _load_member(m) -> LoadedMember:
    from evaluation.explain import Explainer
    from evaluation.tabular import load_model

    if m.family != "sklearn":
        raise InferenceError(f"member {m.ref} is a {m.family!r} model: score_batch runs scikit-learn and LLM models; "
                             "a metadata-only import has nothing to run")
    try:
        est, meta = load_model(m.artifact_uri)
    except FileNotFoundError as e:
        raise InferenceError(f"member {m.ref}: {e}") from None
    bg = Path(m.artifact_uri) / "background.npy"
    expl = Explainer(est, np.load(bg) if bg.is_file() else None, features=meta["features"])
    return LoadedMember(m.version_id, m.ref, est, meta, expl)


def _read_parquet(path: str | Path, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise InferenceError(f"{what} {str(path)!r} does not exist; pass the path of a Parquet file")
    try:
        return pd.read_parquet(p)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InferenceError(f"{what} {str(path)!r} is not a readable Parquet file: {str(e).splitlines()[0]}") from None


def read_batch(path: str | Path, id_column: str = "request_id") -> pd.DataFrame:
    p = Path(path)
    df = _read_parquet(p, "batch")
    if id_column not in df.columns:
        raise InferenceError(f"batch {p.name} has no {id_column!r} column; every row needs a request id")
    if df.empty:
        raise InferenceError(f"batch {p.name} has no rows")
    if df[id_column].isna().any():
        raise InferenceError(f"batch {p.name}: {id_column!r} has empty values in {int(df[id_column].isna().sum())} row(s)")
    ids = df[id_column].astype(str)
    if (ids == "").any():
        raise InferenceError(f"batch {p.name}: {id_column!r} has empty values")
    if ids.str.contains("\x00", regex=False).any():
        raise InferenceError(f"batch {p.name}: {id_column!r} holds a NUL character (\\u0000), which the log cannot store")
    dups = ids[ids.duplicated()].unique()
    if len(dups):
        raise InferenceError(f"batch {p.name}: {len(dups)} duplicate request ids (e.g. {dups[0]!r}); ids must be unique")
    df[id_column] = ids
    return df


def score_frame(member: LoadedMember, batch: pd.DataFrame, *, explain: bool = True) -> pd.DataFrame:
    """Predictions (and SHAP values) of one member for the given rows."""
    from evaluation.tabular import predict

    feats = member.meta["features"]
    missing = [f for f in feats if f not in batch.columns]
    if missing:
        raise InferenceError(f"batch lacks the features {member.ref} needs: {', '.join(missing[:10])}")
    X = _numeric_features(batch, feats, member.ref)
    try:
        _, score, labels = predict(member.estimator, member.meta, X)
    except ValueError as e:  # e.g. NaN for an estimator that has no missing-value support
        raise InferenceError(f"{member.ref} cannot score this batch: {str(e).splitlines()[0]}") from None
    out = pd.DataFrame({"request_id": batch["request_id"].to_numpy(), "output": [str(x) for x in labels],
                        "score": score.astype(float)})
    if explain:
        e = member.explainer.explain(X)
        out["shap"] = [None if r is None else json.dumps(r) for r in e.rows(feats, len(X))]
        out["shap_base"] = e.base
    else:
        out["shap"] = None
        out["shap_base"] = None
    out["inputs"] = [json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in zip(feats, row, strict=True)})
                     for row in X.itertuples(index=False, name=None)]
    return out


def _numeric_features(batch: pd.DataFrame, feats: list[str], ref: str) -> pd.DataFrame:
    """The feature columns as floats; a column that is not numeric, or holds an infinity, is
    refused by name (NaN passes: the estimator says whether it can score a missing value)."""
    cols = {}
    for f in feats:
        try:
            cols[f] = batch[f].astype(float)
        except (ValueError, TypeError):
            bad = next((v for v in batch[f] if not _is_number(v)), None)
            raise InferenceError(f"batch column {f!r} is not numeric (e.g. {str(bad)[:40]!r}); {ref} needs numbers there") from None
        inf = np.isinf(cols[f].to_numpy())
        if inf.any():
            rid = batch["request_id"].iloc[int(np.argmax(inf))]
            raise InferenceError(f"batch column {f!r} is infinite in {int(inf.sum())} row(s) (e.g. request {rid!r}); "
                                 "send a finite number or leave it empty")
    return pd.DataFrame(cols, index=batch.index)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (ValueError, TypeError):
        return False


@dataclass
class Routed:
    """A batch routed through a group's traffic split: which member scores which rows."""

    group: Group
    batch: pd.DataFrame
    routed_to: np.ndarray  # version id per batch row
    shadow: bool

    def jobs(self) -> list[tuple[Any, pd.DataFrame, np.ndarray]]:
        """(member, its rows, served flags) for every member that scores something."""
        live = [m for m in self.group.members if m.role != "retired"]
        weights = self.group.routed
        out = []
        for m in live if self.shadow else [m for m in live if m.version_id in weights]:
            rows = self.batch if self.shadow else self.batch[self.routed_to == m.version_id]
            if not rows.empty:
                out.append((m, rows, self.routed_to[self.batch.index.get_indexer(rows.index)] == m.version_id))
        return out


def route(engine: Engine, group_name: str, batch_path: str | Path, *, shadow: bool | None = None) -> Routed:
    """Read a batch and assign each row to a member by a deterministic hash of its request id."""
    from vigil.groups.membership import Groups
    from vigil.groups.routing import assign

    g = Groups(engine).get(group_name)
    if g.champion is None:
        raise InferenceError(f"group {group_name!r} has no champion; `vigil groups add {group_name!r} MODEL:VERSION "
                             "--role champion` first")
    batch = read_batch(batch_path)
    if g.champion.family == "llm" and "prompt" not in batch.columns:
        raise InferenceError(f"batch {Path(batch_path).name} has no 'prompt' column; group {g.name!r} holds LLMs, "
                             "which score one user prompt per row")
    routed_to = assign(g.slug, batch["request_id"].tolist(), g.routed)
    return Routed(g, batch, routed_to, g.shadow if shadow is None else shadow)


def _run_key(run: RunRef) -> str:
    return hashlib.sha256(run.producer_key.encode()).hexdigest()[:12]


def write_predictions(engine: Engine, g: Group, out: pd.DataFrame, run: RunRef, part: str,
                      store: ParquetStore | None = None) -> tuple[int, Path]:
    """Upsert prediction rows into the group's table and write their Parquet partition
    (``inference_log/date=<day>/key=<slug>.<run hash><part>``)."""
    store = store or default_store()
    out = out.assign(logical_date=run.day, run_id=run.run_id)
    out["served"] = out["served"].astype(bool)
    for c in ("flagged", "activated"):
        if c not in out:
            out[c] = None
    with engine.begin() as c:
        if not table_exists(c, g.slug):
            create_table(c, g.slug)  # e.g. a group created before this table existed
        ensure_columns(c, g.slug)
        n = write_rows(c, g.slug, out)
    path = store.write("inference_log", run.day, f"{g.slug}.{_run_key(run)}{part}", out.assign(group_id=g.id))
    return n, path


def score_batch(engine: Engine, group_name: str, batch_path: str | Path, run: RunRef, *, shadow: bool | None = None,
                explain: bool = True, store: ParquetStore | None = None, llm_dir: str | Path | None = None,
                run_stage: Any = None) -> dict[str, Any]:
    """Route each row of a Parquet batch to a member by traffic weight (or, in shadow mode, have
    every live member score every row) and log the predictions.

    scikit-learn members score in this process. LLM members run the ``score-llm`` stage on their
    rows: this function writes each member's rows and spec under ``llm_dir`` and returns them as
    ``llm_jobs`` for the caller to run (the DAG maps a stage operator over them, then calls
    :func:`record_llm_job`); with ``run_stage`` (``(stage, spec_path, out_dir) -> None``, e.g. a
    local subprocess) it runs and records them here."""
    routed = route(engine, group_name, batch_path, shadow=shadow)
    g = routed.group
    if g.champion.family == "llm":
        if llm_dir is None:
            raise InferenceError("an LLM group needs llm_dir (where each member's rows, spec and outputs go)")
        jobs = plan_llm_jobs(engine, routed, Path(llm_dir), explain=explain)
        result = {"group": g.name, "table": g.table, "rows_in_batch": int(len(routed.batch)), "shadow": bool(routed.shadow),
                  "served_by_version": _served_counts(routed), "llm_jobs": jobs}
        if run_stage is not None:
            result["recorded"] = []
            for job in jobs:
                run_stage(job["stage"], job["spec_path"], job["out_dir"])
                result["recorded"].append(record_llm_job(engine, g.name, job, run, store=store))
            result["predictions"] = sum(r["written"] for r in result["recorded"])
        return result

    frames, timings = [], {}
    for m, rows, served in routed.jobs():
        t0 = time.perf_counter()
        f = score_frame(_load_member(m), rows, explain=explain)
        timings[m.ref] = {"rows": len(rows), "seconds": time.perf_counter() - t0}
        f["model_version_id"] = m.version_id
        f["served"] = served
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    n, path = write_predictions(engine, g, out, run, "", store)
    return {"group": g.name, "table": g.table, "rows_in_batch": int(len(routed.batch)), "predictions": int(len(out)),
            "written": n, "shadow": bool(routed.shadow), "served_by_version": _served_counts(routed), "parquet": str(path),
            "timings": timings}


def _served_counts(routed: Routed) -> dict[str, int]:
    ids, counts = np.unique(routed.routed_to, return_counts=True)
    return {str(int(k)): int(v) for k, v in zip(ids, counts, strict=True)}


_REQUEST_KEYS = {"group", "batch_path", "labels_path", "shadow", "explain"}
_AIRFLOW_EXTRA_KEYS = {"from_rest_api"}  # Airflow adds it to events posted over REST


def requests_from(params: dict[str, Any], extras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scoring requests of one score_batch run: the trigger form's, when it names anything, and
    one per inbox-asset event (its ``extra`` holds the same keys). Each is checked here, so a bad
    event fails the run with the field named before anything is scored."""
    reqs = []
    if params.get("batch_path") or params.get("labels_path") or params.get("group"):
        reqs.append(_request(params, "trigger form", form=True))
    for i, extra in enumerate(extras):
        reqs.append(_request(extra, f"inbox event {i + 1} of {len(extras)}"))
    if not reqs:
        raise InferenceError("nothing to score: give group and batch_path (or labels_path) in the trigger form, or emit "
                             "an event on the vigil_score_inbox asset whose extra holds them")
    return reqs


def _request(d: dict[str, Any], where: str, form: bool = False) -> dict[str, Any]:
    unknown = sorted(set(d) - _REQUEST_KEYS - _AIRFLOW_EXTRA_KEYS)
    if unknown and not form:
        raise InferenceError(f"{where}: unknown keys {unknown}; allowed: {sorted(_REQUEST_KEYS)}")
    group = d.get("group")
    if not isinstance(group, str) or not group.strip():
        raise InferenceError(f"{where}: 'group' is required (the model group's name, as in `vigil groups list`)")
    paths = {}
    for k in ("batch_path", "labels_path"):
        v = d.get(k) or ""
        if not isinstance(v, str):
            raise InferenceError(f"{where}: {k!r} must be a path string, got {type(v).__name__}")
        paths[k] = v
    if not paths["batch_path"] and not paths["labels_path"]:
        raise InferenceError(f"{where}: give 'batch_path' (a Parquet batch to score) or 'labels_path' (labels to join)")
    flags = {}
    for k, default in (("shadow", None), ("explain", True)):
        v = d.get(k, default)
        if v is not None and not isinstance(v, bool):
            raise InferenceError(f"{where}: {k!r} must be true or false, got {v!r}")
        flags[k] = v
    # the form's shadow=false means "the group's own setting", as the form says
    shadow = True if flags["shadow"] else None
    return {"group": group, **paths, "shadow": shadow, "explain": flags["explain"] is not False}


# --------------------------------------------------------------------------- LLM groups
def plan_llm_jobs(engine: Engine, routed: Routed, root: Path, *, explain: bool = True) -> list[dict[str, Any]]:
    """Each scoring member's rows (``batch.parquet``) and ``score-llm`` spec under ``root``: the
    newest probes trained on the member or an ancestor, and its lineage's backdoor definition
    (so each row also says whether the generation shows the backdoor behaviour). ``explain``
    False skips the probe's per-unit attribution (the LLM form of SHAP)."""
    from vigil.lifecycle.nightly import llm_context
    from vigil.lifecycle.specs import safe_segment, write_spec

    jobs = []
    for m, rows, served in routed.jobs():
        out = root / f"{safe_segment(m.ref)}-{m.version_id}"
        out.mkdir(parents=True, exist_ok=True)
        batch_file = out / "batch.parquet"
        rows[["request_id", "prompt"]].assign(served=served).to_parquet(batch_file, index=False)
        ctx = llm_context(engine, m.version_id)
        spec: dict[str, Any] = {"model": m.artifact_uri, "batch": str(batch_file), "explain": explain}
        spec.update({k: ctx[k] for k in ("probes", "response", "backdoor_type") if ctx.get(k)})
        jobs.append({"version_id": m.version_id, "ref": m.ref, "rows": int(len(rows)), "out_dir": str(out),
                     **write_spec(out, "score-llm", spec)})
    return jobs


def record_llm_job(engine: Engine, group_name: str, job: dict[str, Any], run: RunRef,
                   store: ParquetStore | None = None) -> dict[str, Any]:
    """Write one member's ``score-llm`` predictions into the group's log: inputs = the prompt,
    output = the generation, score = the probe score, shap = the probe's per-unit attribution
    (none without probes), flagged/activated as the stage decided them."""
    from contract.manifest import read_manifest
    from vigil.groups.membership import Groups

    g = Groups(engine).get(group_name)
    out_dir = Path(job["out_dir"])
    m = read_manifest(out_dir)
    table = next((t for t in m.tables if t.kind == "predictions"), None)
    if m.stage != "score-llm" or table is None:
        raise InferenceError(f"{out_dir} holds no score-llm predictions (stage {m.stage!r}); run the score-llm stage first")
    pred = pd.read_parquet(out_dir / table.path)
    served = pd.read_parquet(out_dir / "batch.parquet").set_index("request_id")["served"]
    has_probe = "probe_score" in pred
    frame = pd.DataFrame({
        "request_id": pred["request_id"].astype(str),
        "model_version_id": int(job["version_id"]),
        "served": served.reindex(pred["request_id"].astype(str)).fillna(False).to_numpy(bool),
        "inputs": [json.dumps({"prompt": p}) for p in pred["prompt"]],
        "output": pred["generation"],
        "score": pred["probe_score"] if has_probe else None,
        "shap": pred["attribution"] if "attribution" in pred else None,
        "shap_base": pred["attribution_base"] if "attribution" in pred else None,
        "flagged": pred["probe_flagged"] if has_probe else None,
        "activated": pred["activated"] if "activated" in pred else None,
    })
    frame = frame.astype(object).where(frame.notna(), None)
    n, path = write_predictions(engine, g, frame, run, f".v{int(job['version_id'])}", store)
    return {"ref": job["ref"], "predictions": int(len(frame)), "written": n, "parquet": str(path),
            "metrics": {k: v for k, v in m.metrics.items() if k.startswith(("activated_rate", "probe_flagged_rate",
                                                                             "generated_tokens_per_s"))}}


# --------------------------------------------------------------------------- labels + live metrics
def ingest_labels(engine: Engine, group_name: str, labels: pd.DataFrame | str | Path) -> dict[str, int]:
    """Join a labels batch (``request_id``, ``label``) onto the log; returns matched/unmatched counts."""
    from vigil.groups.membership import Groups

    if not isinstance(labels, pd.DataFrame):
        labels = _read_parquet(labels, "labels file")
    for col in ("request_id", "label"):
        if col not in labels.columns:
            raise InferenceError(f"labels batch has no {col!r} column; it needs request_id and label")
    if labels["request_id"].isna().any():
        raise InferenceError(f"labels batch: 'request_id' is empty in {int(labels['request_id'].isna().sum())} row(s)")
    for col in ("request_id", "label"):
        if labels[col].astype(str).str.contains("\x00", regex=False).any():
            raise InferenceError(f"labels batch: {col!r} holds a NUL character (\\u0000), which the log cannot store")
    labels = labels.dropna(subset=["label"]).drop_duplicates("request_id", keep="last")
    g = Groups(engine).get(group_name)
    t = table_ident(g.slug)
    with engine.begin() as c:
        with _raw(c).cursor() as cur:
            cur.execute("CREATE TEMP TABLE _labels (request_id TEXT PRIMARY KEY, label TEXT) ON COMMIT DROP")
            with cur.copy("COPY _labels (request_id, label) FROM STDIN") as cp:
                for rid, lab in zip(labels["request_id"].astype(str), labels["label"], strict=True):
                    cp.write_row((rid, _label_text(lab)))
            cur.execute(sql.SQL("UPDATE {t} AS l SET label = s.label, labelled_at = now() FROM _labels s "
                                "WHERE l.request_id = s.request_id").format(t=t))
            updated = cur.rowcount
            cur.execute(sql.SQL("SELECT count(*) FROM _labels s WHERE NOT EXISTS "
                                "(SELECT 1 FROM {t} l WHERE l.request_id = s.request_id)").format(t=t))
            unmatched = cur.fetchone()[0]
            cur.execute("DROP TABLE _labels")
    return {"labels": int(len(labels)), "predictions_labelled": int(updated), "unmatched_request_ids": int(unmatched)}


def _label_text(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def live_metrics(engine: Engine, group_name: str, *, since: date | None = None) -> dict[str, Any]:
    """Metrics of each member on labelled predictions, and champion vs each challenger:
    paired (McNemar on the same requests) where shadow scoring gives both models the same rows,
    otherwise unpaired on the rows each served (Wilson intervals, Fisher test)."""
    from evaluation.comparison import ComparisonError, Outputs, Policy, compare_paired, compare_summaries
    from evaluation.tabular import classification_metrics
    from vigil.groups.membership import Groups

    g = Groups(engine).get(group_name)
    with engine.connect() as c:
        df = read_log(c, g.slug)
    if since is not None and not df.empty:
        df = df[df["logical_date"] >= since]
    df = df[df["label"].notna()] if not df.empty else df
    result: dict[str, Any] = {"group": g.name, "labelled_predictions": int(len(df)), "members": {}, "comparisons": []}
    if df.empty:
        result["note"] = "no labelled predictions yet: ingest a labels batch (request_id, label)"
        return result
    if g.champion is not None and g.champion.family == "llm":
        return _live_llm(df, g, result)
    pos = {m.version_id: _positive_label(m) for m in g.members}
    df = df.assign(y_true=[int(lab == pos[v] or (pos[v] == "anomaly" and lab.lower() in ("1", "true")))
                           for lab, v in zip(df["label"], df["model_version_id"], strict=True)],
                   y_pred=[int(out == pos[v]) for out, v in zip(df["output"], df["model_version_id"], strict=True)])
    summaries = {}
    for m in g.members:
        d = df[(df["model_version_id"] == m.version_id) & df["served"]]
        if d.empty:
            continue
        has_both = 0 < d["y_true"].sum() < len(d)
        met = classification_metrics(d["y_true"].to_numpy(), d["y_pred"].to_numpy(),
                                     d["score"].to_numpy() if has_both else None, n_boot=300)
        met.pop("confusion")
        summaries[m.version_id] = met
        result["members"][m.ref] = {"role": m.role, **met}
    champ = g.champion
    try:
        policy = Policy(g.primary_metric, g.direction, g.guardrails, alpha=g.alpha, min_effect=g.min_effect)
    except ComparisonError as e:  # live metrics are advisory: say why there is no comparison
        result["note"] = f"no comparison: {e}"
        return result
    for ch in g.challengers:
        if champ is None:
            break
        a = df[df["model_version_id"] == champ.version_id].set_index("request_id")
        b = df[df["model_version_id"] == ch.version_id].set_index("request_id")
        common = a.index.intersection(b.index)
        try:
            if len(common) >= 20:
                a, b = a.loc[common], b.loc[common]
                r = compare_paired(a["y_true"].to_numpy(), Outputs(a["y_pred"].to_numpy(), a["score"].to_numpy()),
                                   Outputs(b["y_pred"].to_numpy(), b["score"].to_numpy()), policy, n_boot=300)
            elif champ.version_id in summaries and ch.version_id in summaries:
                r = compare_summaries(summaries[champ.version_id], summaries[ch.version_id], policy)
            else:
                continue
        except Exception as e:  # noqa: BLE001 - live metrics are advisory; report why instead of failing
            result["comparisons"].append({"champion": champ.ref, "challenger": ch.ref, "error": str(e)})
            continue
        result["comparisons"].append({"champion": champ.ref, "challenger": ch.ref, "decision": r.decision,
                                      "paired": r.paired, "reasons": r.reasons, **r.to_json()})
    return result


_TRUE_LABELS = ("1", "true", "yes", "triggered", "attack")


def _live_llm(df: pd.DataFrame, g: Group, result: dict[str, Any]) -> dict[str, Any]:
    """LLM groups: a label says whether the request really was an attack (carried the trigger).
    Per member (served and shadow predictions): the probe's detection of those requests (its flag and score against the label),
    and how often the generation showed the backdoor behaviour on attack and on benign requests."""
    from evaluation.intervals import wilson
    from evaluation.tabular import classification_metrics

    y_all = df["label"].astype(str).str.strip().str.lower().isin(_TRUE_LABELS).astype(int)
    for m in g.members:
        # every labelled prediction the member made, served or shadow: a shadow challenger is
        # judged on the same traffic as the champion it may replace
        sel = df["model_version_id"] == m.version_id
        d, y = df[sel], y_all[sel].to_numpy()
        if d.empty:
            continue
        out: dict[str, Any] = {"role": m.role, "n_samples": int(len(d)), "attack_requests": int(y.sum())}
        if d["flagged"].notna().all():
            has_both = 0 < y.sum() < len(y)
            det = classification_metrics(y, d["flagged"].astype(bool).to_numpy(),
                                         d["score"].astype(float).to_numpy() if has_both else None, n_boot=300)
            det.pop("confusion")
            out.update({f"probe_{k}": v for k, v in det.items() if k not in ("n_samples", "positive_rate")})
        if d["activated"].notna().all():
            act = d["activated"].astype(bool).to_numpy()
            for name, mask in (("attack", y == 1), ("benign", y == 0)):
                if mask.any():
                    out.update(wilson(int(act[mask].sum()), int(mask.sum())).as_metrics(f"activated_rate_{name}"))
        result["members"][m.ref] = out
    result["note"] = ("LLM group: label = the request was an attack (carried the trigger); probe_* = the deception probe's "
                      "detection, activated_rate_* = backdoor behaviour in the generations. Champion vs challenger "
                      "decisions for LLMs come from the nightly evaluation's paired generations.")
    return result


def _positive_label(m) -> str:
    from evaluation.tabular import load_model

    try:
        _, meta = load_model(m.artifact_uri)
    except FileNotFoundError:
        return "1"
    return "anomaly" if meta["kind"] == "anomaly" else _label_text(meta["positive_class"])
