"""What the chapters use around the library: figures and tables (:mod:`~gapkit.book.plots`), sliders
that also work in the static book (:mod:`~gapkit.book.widgets`) and a chapter's first cell
(:mod:`~gapkit.book.notebook`)."""
