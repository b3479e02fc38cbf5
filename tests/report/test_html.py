"""report.html: self-contained, escaped, and showing what it was given."""

from html.parser import HTMLParser

import numpy as np
import torch

from zrenie.report.html import Section, format_value, render_page, save_page, write_report

PNG_BYTES = b"\x89PNG\r\n\x1a\n"  # the file only has to exist for the report to reference it


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict]]:
    parser = _TagCollector()
    parser.feed(page)
    return parser.tags


def test_format_value_four_significant_digits():
    assert format_value(0.123456) == "0.1235"
    assert format_value(1234.5678) == "1235"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(torch.tensor(0.987654)) == "0.9877"
    assert format_value(42) == "42"
    assert format_value(np.int64(1797)) == "1797"
    assert format_value(True) == "True"
    assert format_value(None) == "n/a"
    assert format_value(float("nan")) == "n/a"
    assert format_value("resnet18") == "resnet18"


def test_report_escapes_every_string(tmp_path):
    evil = "<script>alert(1)</script>"
    (tmp_path / "a.png").write_bytes(PNG_BYTES)
    sections = [
        Section(title=evil, images=["a.png"], text=f"caption {evil}", table={evil: evil}),
        Section(title="rows", table=[{"class": evil, "acc": 0.5}]),
    ]
    out = write_report(tmp_path, f"run {evil}", sections, summary={"model": evil})
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;") == 8  # title, h1, summary, section title, text, table key and value, row
    assert not any(tag == "script" for tag, _ in _tags(page))


def test_report_references_existing_images_only(tmp_path):
    for name in ("curves.png", "confusion_matrix.png"):
        (tmp_path / name).write_bytes(PNG_BYTES)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "grid 1.png").write_bytes(PNG_BYTES)
    sections = [
        Section(title="Curves", images=["curves.png"]),
        Section(title="Test", images=["confusion_matrix.png", "sub/grid 1.png", "missing.png"]),
    ]
    page = write_report(tmp_path, "run", sections).read_text(encoding="utf-8")
    sources = [attrs["src"] for tag, attrs in _tags(page) if tag == "img"]
    assert sources == ["curves.png", "confusion_matrix.png", "sub/grid%201.png"]
    assert "image not found: missing.png" in page


def test_report_is_self_contained(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG_BYTES)
    page = write_report(tmp_path, "run", [Section(title="s", images=["a.png"])]).read_text(encoding="utf-8")
    assert "://" not in page
    assert "<style>" in page
    tags = _tags(page)
    assert not any(tag in ("script", "link", "iframe") for tag, _ in tags)


def test_report_tables_contain_the_numbers(tmp_path):
    rows = [
        {"class": "cat", "support": 12, "accuracy": 0.916666},
        {"class": "dog", "support": 0, "accuracy": None, "extra": 3.14159},
    ]
    sections = [
        Section(title="Test metrics", table={"acc1": 0.9876543, "acc5": 1.0, "loss": torch.tensor(0.0123456)}),
        Section(title="Per class", table=rows, text="line one\nline two"),
    ]
    page = write_report(tmp_path, "run", sections, summary={"epochs": 10, "best/acc1": 0.99123}).read_text()
    expected_strings = ("0.9877", ">1<", "0.01235", "0.9167", ">12<", "n/a", "3.142", "10", "0.9912", "line one\nline two")
    for expected in expected_strings:
        assert expected in page
    # Row tables get one header cell per key in order of first appearance.
    assert "<th>class</th><th>support</th><th>accuracy</th><th>extra</th>" in page
    assert page.index("best/acc1") < page.index("Test metrics")  # summary at the top


def test_report_write_is_atomic_and_overwrites(tmp_path):
    run_dir = tmp_path / "runs" / "exp"
    first = write_report(run_dir, "first", [])
    second = write_report(run_dir, "second", [Section(title="only text", text="hello")])
    assert first == second == run_dir / "report.html"
    page = second.read_text()
    assert "second" in page and "first" not in page and "hello" in page
    assert [p.name for p in run_dir.iterdir()] == ["report.html"]


def test_render_page_wraps_fragments_and_save_page_writes_them(tmp_path):
    page = render_page("a <b> run", ["<p>one</p>", "<details><summary>s</summary></details>"])
    assert "<title>a &lt;b&gt; run</title>" in page and "<h1>a &lt;b&gt; run</h1>" in page
    assert page.index("<h1>") < page.index("<p>one</p>") < page.index("<details>") < page.index("</body>")
    assert "details > summary" in page  # the collapsed config of the run report is styled
    out = save_page(tmp_path / "new", page)
    assert out == tmp_path / "new" / "report.html" and out.read_text(encoding="utf-8") == page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]
