"""Benchmark spec: TOML parsing, defaults, and errors that name the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from matbench.errors import SpecError
from matbench.runner import job_id, plan_jobs
from matbench.spec import load_spec, parse_spec

MINIMAL = """
output = "out"
[[datasets]]
path = "imgs"
[[masksets]]
kind = "mat-large"
[[models]]
name = "mean-fill"
"""


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "w.pkl").write_bytes(b"x")
    return tmp_path


def write(tree: Path, text: str) -> Path:
    p = tree / "spec.toml"
    p.write_text(text)
    return p


def test_minimal_spec_defaults_and_relative_paths(tree: Path) -> None:
    s = load_spec(write(tree, MINIMAL))
    assert s.name == "spec"
    assert s.output == tree / "out"
    assert s.resolutions == [512] and s.seed == 0 and s.batch_size == 8 and s.smoke is False
    assert s.metrics == ["fid", "pids", "uids", "lpips"]
    (d,) = s.datasets
    assert (d.name, d.preset, d.path, d.policy, d.limit) == ("imgs", "folder", tree / "imgs", "mat-val", None)
    (m,) = s.masksets
    assert (m.name, m.kind, m.path, m.seed) == ("mat-large", "mat-large", None, 0)
    (mo,) = s.models
    assert (mo.label, mo.name, mo.samples, mo.weights, mo.smoke) == ("mean-fill", "mean-fill", 1, None, False)


def test_output_override_and_generalization_default_resolutions(tree: Path) -> None:
    s = load_spec(write(tree, "generalization = true\n" + MINIMAL), output=tree / "elsewhere")
    assert s.output == tree / "elsewhere"
    assert s.resolutions == [512, 1024]


def test_jobs_are_the_cross_product_with_stable_ids(tree: Path) -> None:
    text = MINIMAL.replace('kind = "mat-large"', 'kind = "mat-large"\n[[masksets]]\nkind = "mat-small"\nseed = 7')
    text = "resolutions = [256, 512]\n" + text + '[[models]]\nname = "opencv-telea"\nlabel = "telea"\n'
    s = load_spec(write(tree, text))
    jobs = plan_jobs(s)
    assert len(jobs) == 1 * 2 * 2 * 2
    ids = [j.id for j in jobs]
    assert len(set(ids)) == len(ids)
    assert "imgs__mat-small__telea__512" in ids
    assert job_id("a", "b", "c", 1024) == "a__b__c__1024"
    assert s.masksets[1].seed == 7 and s.masksets[0].seed == 0


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda t: t + 'weigths = "w.pkl"\n', "models[0].weigths: unknown key"),
        (lambda t: t + '[[models]]\nname = "opencv-ns"\nweights = "nope.pkl"\n', "models[1].weights"),
        (lambda t: t + '[[models]]\nname = "no-such-model"\n', "models[1].name"),
        (lambda t: t.replace('kind = "mat-large"', 'kind = "mat-huge"'), "masksets[0].kind"),
        (lambda t: t.replace('kind = "mat-large"', 'kind = "mat-large"\npath = "imgs"'), "masksets[0]:"),
        (lambda t: t.replace('path = "imgs"', 'path = "missing"'), "datasets[0].path"),
        (lambda t: t.replace('path = "imgs"', 'path = "imgs"\npolicy = "stretch"'), "datasets[0].policy"),
        (lambda t: t.replace('path = "imgs"', 'path = "imgs"\npreset = "imagenet"'), "datasets[0].preset"),
        (lambda t: "resolutions = [512, 0]\n" + t, "resolutions:"),
        (lambda t: "generalization = true\nresolutions = [512]\n" + t, "resolutions:"),
        (lambda t: 'metrics = ["fid", "fud"]\n' + t, "metrics[1]"),
        (lambda t: "batch_size = 0\n" + t, "batch_size"),
        (lambda t: 'smoke = "maybe"\n' + t, "smoke"),
        (lambda t: t + "samples = 0\n", "models[0].samples"),
        (lambda t: t + "samples = 3\n", "models[0].samples: model 'mean-fill' is deterministic"),
        (lambda t: t + "options = { device = 'cuda' }\n", "models[0].options.device"),
        (lambda t: t + '[[models]]\nname = "mean-fill"\n', "models[1].label"),
        (lambda t: t.replace('output = "out"', ''), "output"),
        (lambda t: t.replace('[[models]]\nname = "mean-fill"\n', ''), "models: missing"),
        (lambda t: t.replace('path = "imgs"', 'path = "imgs"\nname = "a__b"'), "datasets[0].name"),
    ],
)
def test_errors_name_the_key(tree: Path, edit, key: str) -> None:
    with pytest.raises(SpecError) as e:
        load_spec(write(tree, edit(MINIMAL)))
    assert key in str(e.value), str(e.value)


def test_bad_toml_names_the_file(tree: Path) -> None:
    p = write(tree, "output = \n")
    with pytest.raises(SpecError, match="spec.toml: not valid TOML"):
        load_spec(p)


def test_parse_dict_and_to_json_roundtrip(tree: Path) -> None:
    data = {"output": "o", "seed": 3, "datasets": [{"path": "imgs", "name": "d", "limit": 4}],
            "masksets": [{"kind": "mat-small"}],
            "models": [{"name": "mat", "smoke": True, "samples": 1, "options": {"truncation_psi": 0.5}}]}
    s = parse_spec(data, base_dir=tree)
    j = s.to_json()
    assert j["seed"] == 3 and j["masksets"][0]["seed"] == 3  # mask seed defaults to the run seed
    assert j["models"][0] == {"label": "mat", "name": "mat", "weights": None, "smoke": True, "samples": 1,
                              "options": {"truncation_psi": 0.5}}
    assert j["datasets"][0]["limit"] == 4


@pytest.mark.parametrize("example", sorted((Path(__file__).resolve().parents[1] / "examples" / "specs").glob("*.toml")),
                         ids=lambda p: p.name)
def test_example_specs_are_valid(example: Path) -> None:
    s = load_spec(example, check_paths=False)
    assert plan_jobs(s)


def test_cli_reports_spec_errors_in_one_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from matbench.cli import main

    p = write(tree, MINIMAL + "weigths = 1\n")
    assert main(["run", "--dry-run", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "models[0].weigths: unknown key" in err
    assert main(["run", "--dry-run", "--smoke", str(write(tree, MINIMAL))]) == 0
    out = capsys.readouterr().out
    assert "imgs__mat-large__mean-fill__512" in out and "missing weights: none" in out
