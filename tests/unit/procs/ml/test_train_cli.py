from __future__ import annotations

import json

import onnx

from procs.capture.store import list_captures, open_capture
from procs.ml.simcapture import sim_records
from procs.train import main


def test_train_from_sim_writes_capture_model_and_card(tmp_path, capsys):
    out = tmp_path / "models" / "m.onnx"
    sim = tmp_path / "sim"

    rc = main(
        [
            "--from-sim",
            "--seed",
            "3",
            "--sim-duration-s",
            "75",
            "--sim-dir",
            str(sim),
            "--out",
            str(out),
        ]
    )

    [cap_path] = list_captures(sim)
    cap = open_capture(cap_path)
    books, trades = sim_records(3, 75)
    card = json.loads((tmp_path / "models" / "m.card.json").read_text())
    assert rc == 0
    assert cap.streams["md.book"].tobytes() == books.tobytes()
    assert cap.streams["md.trade"].tobytes() == trades.tobytes()
    assert cap.attrs["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert card["data"]["sources"] == [cap_path.name]
    assert onnx.load(str(out)).graph.output[0].name == "score"
    assert "validation" in capsys.readouterr().out


def test_train_from_captures_directory_and_bad_paths(tmp_path, capsys):
    assert main(["--captures", str(tmp_path / "nope"), "--seed", "1"]) == 2
    assert main(["--captures", str(tmp_path), "--seed", "1"]) == 2
    assert main(["--seed", "1"]) == 2

    err = capsys.readouterr().err
    assert "no such file" in err
    assert "no capture files" in err
    assert "Traceback" not in err
