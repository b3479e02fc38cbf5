"""Run reports: PNG pictures (curves, confusion matrices, image grids), one report.html, and predict's Results.

The modules are imported where they are used (`zrenie.report.plots`, `.html`, `.result`): importing this
package does not load matplotlib, so listing models or loading a run stays quick.
"""
