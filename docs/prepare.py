"""Prepare the executed notebooks for the website, without running them: `python docs/prepare.py OUT`.

Each chapter of the README's table is copied into OUT as it would be read on a web page: `#|` directive lines
stripped, `#| hide` cells dropped, each `#| export` cell followed by the API card nbdev's `show_doc` renders for
what it defines (from the library the notebooks export), a line to download the notebook or open it in Colab, and
widget outputs replaced by what a page can show without a kernel. The saved outputs are kept as they are (a
stream's consecutive outputs merged into one block).
"""
import ast
import configparser
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

from fastcore.docments import MarkdownRenderer

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
WIDGET = "application/vnd.jupyter.widget-view+json"
PLAYGROUND = "08_playground.ipynb"
PLAYGROUND_PICTURE = "playground.png"  # docs/playground.png: the playground in use, in JupyterLab
ASSETS = (PLAYGROUND_PICTURE, "favicon.png", "_static/course.css")  # files of docs/ that the site uses as they are


def settings() -> configparser.SectionProxy:
    "The `[DEFAULT]` section of settings.ini."
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


def chapters() -> list[str]:
    "The notebooks of the README's chapter table, in its order (the index first)."
    index = json.loads((NBS / "index.ipynb").read_text())["cells"]
    table = next("".join(c["source"]) for c in index if "".join(c["source"]).startswith("## The chapters"))
    return re.findall(r"^\|[^|]*\| \[[^\]]+\]\(([\w.]+\.ipynb)\)", table, re.M)


def directives(source: str) -> dict[str, list[str]]:
    "A code cell's `#| name args` directives."
    return {m[1]: m[2].split() for m in re.finditer(r"^#\|[ \t]*([\w-]+):?[ \t]*(.*)$", source, re.M)}


def strip_directives(source: str) -> str:
    "The source without its `#|` lines."
    return "\n".join(l for l in source.splitlines() if not l.startswith("#|")).strip("\n")


def public_names(source: str) -> list[str]:
    "The functions and classes an exported cell defines that are not private."
    return [n.name for n in ast.parse(source).body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def api_card(
    module: str,  # the module the cell exports to, e.g. `cae_course.models`
    name: str,  # a function or class it defines
    level: int,  # its heading's level
) -> str:
    "Markdown for `module.name` as `show_doc` renders it (signature, docments, docstring), with its source link."
    cfg, obj = settings(), getattr(importlib.import_module(module), name)
    line = inspect.getsourcelines(inspect.unwrap(obj))[1]
    url = f"{cfg['git_url']}/blob/{cfg['branch']}/{module.replace('.', '/')}.py#L{line}"
    card = MarkdownRenderer(obj)._repr_markdown_()
    if inspect.isclass(obj):  # show_doc writes a class's signature as `def Name(...)`
        card = card.replace("```python\ndef ", "```python\nclass ", 1)
    return (f"{'#' * level} {name}\n\n<div class=\"api-card\">\n\n`{module}.{name}` · [source]({url})\n\n{card}"
            "\n\n</div>")


def markdown_cell(
    text: str,  # its markdown
    id: str,  # its cell id, unique in the notebook
) -> dict:
    "A new markdown cell."
    return {"cell_type": "markdown", "id": id, "metadata": {}, "source": text}


def links_for(nb_name: str) -> str:
    "The line that offers a chapter's notebook for download and in Colab."
    cfg = settings()
    user_repo = cfg["git_url"].removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{user_repo}/blob/{cfg['branch']}/nbs/{nb_name}"
    return (f'<p class="chapter-links"><a href="notebooks/{nb_name}" download>Download the notebook</a> · '
            f'<a href="{colab}">Open in Colab</a></p>')


def repo_links(markdown: str) -> str:
    "Links to files outside the chapters (`../CONTRIBUTING.md`) point at the repository on GitHub."
    cfg = settings()
    blob = f"{cfg['git_url']}/blob/{cfg['branch']}"
    return re.sub(r"\]\(\.\./([^)]+)\)", lambda m: f"]({blob}/{m[1]})", markdown)


def kernel_free(output: dict) -> dict | None:
    "An output as a page without a kernel shows it: a widget's still picture, or nothing for a widget's bare repr."
    data = output.get("data", {})
    if WIDGET not in data:
        return output
    still = {k: v for k, v in data.items() if k != WIDGET}
    return {**output, "data": still} if set(still) - {"text/plain"} else None


def merge_streams(outputs: list[dict]) -> list[dict]:
    "Consecutive outputs of one stream as one block (a training loop's log lines, once its progress bars are gone)."
    merged = []
    for o in outputs:
        if merged and o["output_type"] == "stream" and merged[-1]["output_type"] == "stream" \
                and merged[-1]["name"] == o["name"]:
            merged[-1] = {**merged[-1], "text": "".join(merged[-1]["text"]) + "".join(o["text"])}
        else:
            merged.append(o)
    return merged


def playground_note() -> dict:
    "The picture of the playground in use, and how to run it."
    return markdown_cell(
        "## The playground in use\n\n"
        "![The playground in JupyterLab after a minute of training: the sliders, the faces and the learning curve]"
        f"({PLAYGROUND_PICTURE})\n\n"
        "The sliders and buttons need a running Python kernel, so this page shows a picture of them. To play, run "
        f"the notebook: `jupyter lab nbs/{PLAYGROUND}` in the course's folder, then Run → Run All Cells; or open it "
        "in Colab with the link at the top of this page.", "playground-in-use")


def heading_level(markdown: str, level: int) -> int:
    "The level of the last heading in `markdown`, else `level`."
    return ([len(h) for h in re.findall(r"^(#+) ", markdown, re.M)] or [level])[-1]


def prepare(nb_name: str) -> dict:
    "One chapter, ready for the page."
    nb = json.loads((NBS / nb_name).read_text())
    default = next((d["default_exp"][0] for c in nb["cells"] if c["cell_type"] == "code"
                    for d in [directives("".join(c["source"]))] if "default_exp" in d), None)
    cells, level = [], 1
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            cells.append({**cell, "source": repo_links(source)})
            level = heading_level(source, level)
            if len(cells) == 1:
                cells.append(markdown_cell(links_for(nb_name), "chapter-links"))
            continue
        d = directives(source)
        if d.keys() & {"hide", "default_exp", "exporti"}:
            continue
        outputs = merge_streams([o for o in map(kernel_free, cell.get("outputs", [])) if o])
        cells.append({**cell, "source": strip_directives(source), "outputs": outputs})
        if "export" in d:
            module = f"cae_course.{(d['export'] or [default])[0]}"
            cells += [markdown_cell(api_card(module, n, max(level + 1, 3)), f"api-{n}") for n in public_names(source)]
    if nb_name == PLAYGROUND:
        cells.append(playground_note())
    nb["metadata"].pop("widgets", None)  # their state needs a kernel's widget manager to show
    return {**nb, "cells": cells}


def book_files(names: list[str]) -> dict[str, str]:
    "Jupyter Book's table of contents (the chapters in order) and configuration (docs/_config.yml + settings.ini)."
    cfg = settings()
    toc = "format: jb-book\nroot: index\nchapters:\n" + "".join(f"- file: {Path(n).stem}\n" for n in names[1:])
    config = ((ROOT / "docs" / "_config.yml").read_text() + f"\n# from settings.ini\ntitle: {cfg['title']}\n"
              f"author: {cfg['author']}\nrepository:\n  url: {cfg['git_url']}\n  branch: {cfg['branch']}\n")
    return {"_toc.yml": toc, "_config.yml": config}


def main(out: Path):
    "Write into `out` the prepared chapters, the book's files and assets, and the original notebooks (to download)."
    names = chapters()
    (out / "_extra" / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb_name in names:
        (out / nb_name).write_text(json.dumps(prepare(nb_name), indent=1, ensure_ascii=False))
        (out / "_extra" / "notebooks" / nb_name).write_bytes((NBS / nb_name).read_bytes())
    for name, text in book_files(names).items():
        (out / name).write_text(text)
    (out / "_static").mkdir()
    for asset in ASSETS:
        (out / asset).write_bytes((ROOT / "docs" / asset).read_bytes())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
