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


def _paper_numbers():
    """The papers' reference numbers that the experiments hold (labelled as the papers'), as text."""
    from gapkit.experiments import (bsvi, discrete_latents, elbo_tightness, generalization_gaps, iwae_snr,
                                    refinement, reverse_half_asleep)
    consts = [bsvi.PAPER, discrete_latents.PAPER_NLL, elbo_tightness.PAPER, generalization_gaps.PAPER,
              iwae_snr.RAINFORTH_TABLE1, refinement.PAPER_TABLE1, reverse_half_asleep.PAPER]

    def floats(o):
        if isinstance(o, dict):
            for v in o.values():
                yield from floats(v)
        elif isinstance(o, list):
            for v in o:
                yield from floats(v)
        elif isinstance(o, float) and abs(o) not in (0.0, 0.5, 1.0):
            yield o
    return sorted({f"{abs(v):.2f}" if abs(v) >= 10 else f"{abs(v):.3f}" for c in consts for v in floats(c)})


@pytest.mark.parametrize("py", [p for p in PAIRS if not p.stem.startswith("07")], ids=lambda p: p.stem)
def test_notebooks_type_no_paper_number(py):
    """A chapter reads the papers' numbers from its experiment (where they are labelled and tested);
    it never types one (chapter 7 is another helper's)."""
    text = py.read_text()
    typed = [n for n in _paper_numbers() if n in text]
    assert not typed, f"{py.name} types the papers' numbers {typed}: read them from the experiment's results"
