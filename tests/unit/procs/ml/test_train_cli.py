from __future__ import annotations

import json

import onnx

from procs.ml.simcapture import sim_records
from procs.tickstore.store import list_captures, open_capture
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


def _sim_args(*extra: str) -> list[str]:
    return ["--from-sim", "--seed", "3", "--sim-duration-s", "75", *extra]


def test_default_out_is_a_new_file_under_run_models(tmp_path, monkeypatch, capsys):
    import procs.train as cli

    monkeypatch.setattr(cli, "MODELS_DIR", tmp_path / "run" / "models")
    first = cli.default_out(3)
    first.parent.mkdir(parents=True)
    first.write_bytes(b"taken")

    rc = main(_sim_args())

    out = capsys.readouterr().out
    [written] = [p for p in (tmp_path / "run" / "models").glob("*.onnx") if p != first]
    assert rc == 0
    assert first.read_bytes() == b"taken"  # never overwritten
    assert written.name.startswith("model-")
    assert "seed3" in written.name
    assert written.with_name(written.name.removesuffix(".onnx") + ".card.json").exists()
    assert f"wrote {written}" in out
    assert "PROMOTABLE" in out  # the gate's verdict, one way or the other


def test_out_refuses_a_git_tracked_file_unless_forced(tmp_path, capsys):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    tracked = repo / "m.onnx"
    tracked.write_bytes(b"committed model")
    for cmd in (["init", "-q"], ["add", "m.onnx"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)

    refused = main(_sim_args("--out", str(tracked)))
    err = capsys.readouterr().err
    forced = main(_sim_args("--out", str(tracked), "--force"))

    assert refused == 2
    assert "a file git tracks" in err
    assert "--force" in err
    assert forced == 0
    assert tracked.read_bytes() != b"committed model"


def test_out_refuses_the_shipped_default_model(capsys):
    from procs.train import SHIPPED

    before = SHIPPED.read_bytes()

    rc = main(_sim_args("--out", str(SHIPPED)))

    assert rc == 2
    assert "configs/models/default.onnx" in capsys.readouterr().err
    assert SHIPPED.read_bytes() == before
