"""Each notebooks/*.py has an .ipynb twin with the same cells and no outputs.
(The notebooks themselves are executed by nbmake: `pytest --nbmake notebooks/`.)"""
import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("*.py"))


def test_there_are_notebooks():
    assert PAIRS, "no notebooks/*.py found"


@pytest.mark.parametrize("py", PAIRS, ids=lambda p: p.stem)
def test_py_and_ipynb_have_the_same_cells(py):
    nb_path = py.with_suffix(".ipynb")
    assert nb_path.exists(), f"{py.name} has no paired {nb_path.name}: run jupytext --to ipynb {py}"
    a = [(c.cell_type, c.source.strip()) for c in jupytext.read(py).cells]
    nb = json.loads(nb_path.read_text())
    b = [(c["cell_type"], "".join(c.get("source", "")).strip()) for c in nb["cells"]]
    assert a == b, f"{py.name} and {nb_path.name} differ: run jupytext --to ipynb {py}"
    assert not any(c.get("outputs") for c in nb["cells"]), f"{nb_path.name} is committed with outputs"
