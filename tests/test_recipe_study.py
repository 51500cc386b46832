"""`python -m bench.benchmarks.recipe`: candidates parsed strictly, the profile trained as the reference, each
candidate in its own resumable checkpoint folder."""
import json

import pytest

from bench.benchmarks import recipe
from bench.core.errors import BenchError


def test_candidates_are_parsed_strictly():
    assert recipe.parse_candidate("epochs=6,lr=0.02,schedule=poly") == {"epochs": 6, "lr": 0.02, "schedule": "poly"}
    with pytest.raises(BenchError, match="FIELD one of"):
        recipe.parse_candidate("input_size=64")
    with pytest.raises(BenchError, match="epochs needs a int"):
        recipe.parse_candidate("epochs=six")


def test_study_trains_the_reference_and_each_candidate(cache_env, tmp_path, capsys):
    argv = ["--method", "panet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--out", str(tmp_path),
            "--candidate", "epochs=1,lr=0.02"]
    assert recipe.main(argv) == 0
    record = json.loads((tmp_path / "recipe-panet-split1.json").read_text())
    rows = {row["candidate"]: row for row in record["results"]}
    assert set(rows) == {"profile", "epochs=1,lr=0.02"}
    assert len(rows["profile"]["val_miou_by_epoch"]) == 2 and len(rows["epochs=1,lr=0.02"]["val_miou_by_epoch"]) == 1
    assert len(list(tmp_path.rglob("best.pt"))) == 2
    table = (tmp_path / "recipe-panet-split1.csv").read_text().splitlines()
    assert table[0].startswith("candidate,steps,train_seconds,best_epoch,best_val_miou") and len(table) == 3
    assert recipe.main(argv) == 0  # finished candidates are read back, not trained again
    assert "profile" in capsys.readouterr().out
