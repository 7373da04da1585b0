"""The experiment report (no Ray): trial table, CSV, mask-distance and Pareto plots."""
import csv

from search_fakes import FOUR, make_experiment
from tickettune.searcher.report import trial_table, write_report


def test_table_has_one_row_per_trial_with_config_bird_metric_cost(tmp_path):
    exp = make_experiment(tmp_path, FOUR)
    header, rows = trial_table(exp)
    for col in ("trial_id", "status", "head_ratio", "eps", "early_bird_step", "val_metric", "relative_cost"):
        assert col in header
    by_id = {r[0]: dict(zip(header, r)) for r in rows}
    assert by_id["a"]["early_bird_step"] == 15 and by_id["a"]["val_metric"] == 0.80
    assert by_id["d"]["early_bird_step"] is None and by_id["d"]["converged"] is False
    assert by_id["e"]["status"] == "ERROR"


def test_write_report_prints_and_writes_pngs(tmp_path, capsys):
    exp = make_experiment(tmp_path, FOUR)
    out = write_report(exp)
    printed = capsys.readouterr().out
    assert "trial_id" in printed and "0.85" in printed
    assert len(out["plots"]) == 2
    for p in out["plots"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out["csv"]) as f:
        assert len(list(csv.reader(f))) == 1 + len(FOUR)


def test_report_of_a_multi_objective_search(tmp_path):
    exp = make_experiment(tmp_path, FOUR, metric=["val_metric", "relative_cost"], mode=["max", "min"])
    out = write_report(exp, out_dir=tmp_path / "r", print_table=False)
    assert (tmp_path / "r" / "pareto.png").stat().st_size > 1000
    assert "relative_cost" in out["table"].splitlines()[0]
