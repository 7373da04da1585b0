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


def test_report_prints_the_front_with_each_points_settings(tmp_path, capsys):
    exp = make_experiment(tmp_path, FOUR, metric=["val_metric", "relative_cost"], mode=["max", "min"])
    out = write_report(exp, out_dir=tmp_path / "r")
    printed = capsys.readouterr().out
    assert out["front"] in printed
    lines = out["front"].splitlines()
    assert lines[0] == "Pareto front (val_metric max, relative_cost min): 3 of 4 tickets"
    assert lines[1].split() == ["trial_id", "val_metric", "relative_cost", "head_ratio", "eps"]
    rows = [line.split() for line in lines[3:6]]
    assert rows == [
        ["b", "0.85", "0.7", "0.4", "0.1"],
        ["a", "0.8", "0.6", "0.2", "0.1"],
        ["c", "0.78", "0.4", "0.3", "0.2"],
    ]  # d is dominated, e has no ticket
    assert lines[-1] == f"export one: tickettune export {exp} --trial b --out DIR"


def test_front_of_a_single_objective_search_uses_cost_as_export_does(tmp_path):
    from tickettune.searcher.report import front_table

    exp = make_experiment(tmp_path, FOUR[:1] + FOUR[3:4])  # a beats d on both
    text = front_table(exp)
    assert text.splitlines()[0] == "Pareto front (val_metric max, relative_cost min): 1 of 2 tickets"
    assert text.splitlines()[3].split()[0] == "a"
