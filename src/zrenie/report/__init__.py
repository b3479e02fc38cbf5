"""Run reports: PNG pictures (curves, confusion matrices, image grids) and one report.html."""

from zrenie.report.html import Section, write_report
from zrenie.report.plots import image_grid, plot_confusion_matrix, plot_learning_curves

__all__ = ["Section", "image_grid", "plot_confusion_matrix", "plot_learning_curves", "write_report"]
