"""`basic_plot`: `rx.plotly` on Plotly's basic bundle (scatter, bar, pie), for pages whose charts
need nothing else. The full bundle that `rx.plotly` loads is about four times larger, and a
browser on a busy machine spends seconds parsing it before the first chart appears; the basic
bundle ships inside the same `plotly.js` package, so nothing new is installed."""

from __future__ import annotations

from reflex_components_plotly.plotly import PlotlyBasic, dynamic_plotly_import


class BasicPlot(PlotlyBasic):
    """A Plotly chart drawn with `plotly.js/dist/plotly-basic.min.js` (lazy-loaded like rx.plotly)."""

    tag: str = "BasicPlot"

    lib_dependencies: list[str] = ["plotly.js@3.7.0"]  # the version rx.plotly already pins

    def _get_dynamic_imports(self) -> str:
        return dynamic_plotly_import(self.tag, "plotly.js/dist/plotly-basic.min.js")


basic_plot = BasicPlot.create
