"""The project's own promises: one environment description, the landing page (nbs/index.ipynb) and the README show the
same chapters and results, CI runs the README's test command, the exported library is in sync with the notebooks,
and the README's table of finished runs is `results/`."""
import configparser
import filecmp
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


def test_environment_yml_matches_settings_ini():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    wanted = settings()["requirements"].split() + settings()["dev_requirements"].split()
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(wanted)
    assert "-e ." in pip


def index_markdown() -> str:
    "The landing page's text: the markdown cells of nbs/index.ipynb."
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


CHAPTER_ROW = r"^\| \d\d[a-z]? \| \[.+\|$"  # | 08 | [playground](08_playground.ipynb) | what you learn | module |
RUN_ROW = r"^\| `[\w.-]+` \|.+\|$"  # | `cae-pixel-blur` | CAE, pixel loss | blur | 15 | ours | input | paper |


def test_index_and_readme_show_the_same_chapters_and_results():
    "The landing page and the README carry the same chapter table (each with links relative to itself) and results table."
    readme, index = (ROOT / "README.md").read_text(), index_markdown()
    chapters = re.findall(CHAPTER_ROW, readme, re.M)
    assert chapters and all("](nbs/" in row for row in chapters)
    assert [row.replace("](nbs/", "](") for row in chapters] == re.findall(CHAPTER_ROW, index, re.M)
    runs = re.findall(RUN_ROW, readme, re.M)
    assert len(runs) == 8 and runs == re.findall(RUN_ROW, index, re.M)  # the README's rows are checked against results/ below


def test_index_links_work_where_jupyterlab_serves_it():
    "Every link on the landing page is a notebook beside it in nbs/, a web address or an anchor: nothing outside nbs/."
    targets = re.findall(r"\]\(([^)]+)\)", index_markdown())
    assert targets
    for target in targets:
        assert target.startswith(("https://", "http://", "#")) or (ROOT / "nbs" / target).is_file(), target


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    start, test = commands
    assert "cae-course demo" in start and "pytest" in test and "nbdev_test" in test
    assert test in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_module_is_exported():
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        source = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"][:3])
        module = re.search(r"#\|\s*default_exp\s+(\S+)", source)
        if module:
            assert (ROOT / "cae_course" / f"{module[1].replace('.', '/')}.py").exists(), nb.name


def test_library_is_in_sync_with_notebooks(tmp_path):
    "Exporting the notebooks again, in a copy of the project, changes nothing in cae_course/."
    for name in ("settings.ini", "setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copytree(ROOT / "cae_course", tmp_path / "cae_course", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["nbdev_export"], cwd=tmp_path, check=True, capture_output=True)
    cmp = filecmp.dircmp(ROOT / "cae_course", tmp_path / "cae_course", ignore=["__pycache__"])
    assert not (cmp.diff_files or cmp.left_only or cmp.right_only), (
        f"run nbdev_export and commit: differing {cmp.diff_files}, only in repo {cmp.left_only}, "
        f"only after export {cmp.right_only}")


def test_readme_reproduction_table_is_the_results_folder():
    "All eight runs are in results/, each with a README row whose numbers are that run's (and no other rows exist)."
    from cae_course.figures import run_result
    from cae_course.paper import EXPERIMENTS

    readme = (ROOT / "README.md").read_text()
    rows = {m[1]: [c.strip() for c in m[2].split("|")] for m in re.finditer(r"^\| `([\w.-]+)` \|(.+)\|$", readme, re.M)}
    finished = {exp: r for exp in EXPERIMENTS if (r := run_result(ROOT / "results", exp))}
    assert set(rows) == {exp.name for exp in finished} == {exp.name for exp in EXPERIMENTS}, "all eight runs, each in the README"
    for exp, r in finished.items():
        _, _, epochs, ours, baseline, paper = rows[exp.name]
        assert epochs == str(r["epochs"]), exp.name
        assert ours.strip("*") == f"{r['psnr']:.2f} / {r['ssim']:.3f}", exp.name
        assert baseline == f"{r['input_psnr']:.2f} / {r['input_ssim']:.3f}", exp.name
        assert paper == f"{exp.paper[0]:.2f} / {exp.paper[1]:.2f}", exp.name
    assert "stand-in" not in readme  # every shipped model is a paper-scale run


def test_readme_classical_rows_are_the_recorded_scores():
    "The README's classical controls are `results/classical_controls.json` (all test faces), on the landing page too."
    recorded = json.loads((ROOT / "results" / "classical_controls.json").read_text())
    readme, index = (ROOT / "README.md").read_text(), index_markdown()
    rows = dict(re.findall(r"^\| \*classical:\* `(\w+)` \|(.+)\|$", readme, re.M))
    assert set(rows) == {"wiener", "lanczos"} and all(f"`{name}` |{row}|" in index for name, row in rows.items())
    for name, row in rows.items():
        r = recorded[name]
        assert r["images"] == 3708, name
        _, _, _, ours, baseline, _ = [c.strip() for c in row.split("|")]
        assert ours == f"{r['psnr']:.2f} / {r['ssim']:.3f}" and baseline == f"{r['input_psnr']:.2f} / {r['input_ssim']:.3f}", name


def test_readme_rows_beyond_the_paper_are_the_shipped_scores():
    "The README's models beyond the paper's eight are the shipped full-scale models, with their recorded 8-bit test scores (all test faces), on the landing page too."
    from cae_course.shipped import pretrained_info, pretrained_names

    readme, index = (ROOT / "README.md").read_text(), index_markdown()
    rows = dict(re.findall(r"^\| \*beyond the paper:\* `([\w.-]+)` \|(.+)\|$", readme, re.M))
    beyond = {n for n in pretrained_names() if pretrained_info(n)["provenance"] == "full-scale"}
    assert set(rows) == beyond and all(f"`{name}` |{row}|" in index for name, row in rows.items())
    for name, row in rows.items():
        info = pretrained_info(name)
        m = info["test"]["int8"]
        _, _, epochs, ours, baseline, _ = [c.strip() for c in row.split("|")]
        assert info["test"]["faces"] == 3708 and epochs == str(info["epochs"]), name
        assert ours.strip("*") == f"{m['psnr']:.2f} / {m['ssim']:.3f}" and baseline == f"{m['input_psnr']:.2f} / {m['input_ssim']:.3f}", name
