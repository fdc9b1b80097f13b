"""End to end: `mlsd run video-search` on the tiny world and on a tiny BEIR collection, then
served; unsupported runs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.artifacts import pickle_protocol, verify_manifest
from mlsd.cli import app
from mlsd.settings import Settings
from mlsd.systems import get_system
from mlsd.systems.video_search.evaluation_online import REPLICATES

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]
runner = CliRunner()
METHODS = {"bm25", "semantic", "visual", "rrf_text", "rrf_all", "fusion", "final"}
OFFLINE = {"ndcg@10", "mrr", "map@100", "recall@100"}


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(app, ["run", "video-search", "--scale", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_world_run_writes_the_run_directory(world_run: Path) -> None:
    for name in ("blueprint.md", "blueprint.html", "metrics.json", "artifacts/serving.json"):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "video-search" and m["scale"] == "tiny"
    assert m["data"]["source"] == "world" and m["data"]["searches"] > 1000
    assert set(m["models"]) == METHODS
    for name in METHODS:
        off = m["models"][name]["offline"]
        assert set(off) >= OFFLINE and off["ndcg@10"] <= m["oracle"]["offline"]["ndcg@10"]
        assert set(m["models"][name]["slices"]) == {"tail", "typo", "poor_text"}
    poor = {n: m["models"][n]["slices"]["poor_text"]["recall@100"] for n in METHODS}
    assert poor["visual"] > poor["bm25"]  # the visual half finds what the text cannot
    assert m["evaluation"]["unsafe_in_top10"]["final"] < m["evaluation"]["unsafe_in_top10"]["bm25"]
    assert m["chosen_model"] in METHODS
    assert m["serving"]["latency_ms"]["total"]["p99"] > 0
    assert m["serving"]["ingest"]["videos"] > 0
    assert m["online"]["decision"] and m["online"]["srm"]
    assert set(m["online"]["tests"]) >= {"ctr", "watch_seconds_per_search"}
    assert m["online"]["interleaving"]["impressions"] > 0
    runs = m["online"]["searches_needed_runs"]
    assert set(runs) == {"ab_ctr", "interleaving", "interleaving_credit"}
    assert all(len(v) == REPLICATES for v in runs.values())
    daily = m["monitoring"]["daily"]
    assert daily[-1]["oov_share"] > m["monitoring"]["baseline"]["oov_share"]


def test_the_run_is_served(world_run: Path) -> None:
    files = verify_manifest(world_run / "artifacts")
    assert not [f for f in files if pickle_protocol(world_run / "artifacts" / f) is not None]
    s = get_system("video-search").load_scorer(world_run, Settings())
    res = s.search("guitar chords", k=10)
    assert res.ranker and 0 < len(res.hits) <= 10


def test_a_beir_collection_runs(tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "qrels").mkdir(parents=True)
    docs = ["guitar chords lesson", "a kitten purrs", "vegetable soup", "chess opening", ""]
    corpus = [{"_id": f"d{i}", "title": t.split(" ")[0], "text": t} for i, t in enumerate(docs)]
    queries = [
        {"_id": f"q{i}", "text": t}
        for i, t in enumerate(["guitar", "kitten", "soup", "chess", "nothing"])
    ]
    (d / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (d / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    qrels = "".join(f"q{i}\td{i}\t{1 + i % 2}\n" for i in range(4)) + "q4\td4\t0\n"
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "video-search", "--data", f"beir:{d}", "--scale", "tiny", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    for name in ("bm25", "semantic", "rrf_text"):
        assert set(m["models"][name]["offline"]) >= {"ndcg@10", "map@100"}
    assert {s["step"] for s in m["skipped"]} >= {"visual", "online", "serving"}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--scale", "medium"], "not supported yet"),
        (["--data", "beir:/nowhere"], "no such directory"),
        (["--data", "movielens:/nowhere"], "unknown data format"),
    ],
)
def test_unsupported_runs_are_refused_with_one_line(
    args: list[str], reason: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["run", "video-search", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and reason in result.output
    assert not (tmp_path / "r").exists()
