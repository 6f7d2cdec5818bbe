"""`sessionfed topology plan` against golden files, and `sessionfed topology graph` for every
file in topologies/: DOT rendered by Graphviz's `dot`, SVG parsed and opened in headless
Chromium (a screenshot), Mermaid with every site (scripts/interop/run.sh installs graphviz
and chromium; without them those two checks are skipped)."""

import shutil
import struct
import subprocess
import zlib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PLANS = ROOT / "Tests" / "TopologyTests" / "plans"
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))


def distinct_pixel_bytes(png):
    """How many distinct byte values the image's pixel data holds (a blank page: one or two)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, compressed = 8, b""
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind = data[offset + 4:offset + 8]
        if kind == b"IDAT":
            compressed += data[offset + 8:offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(compressed)))


def sessionfed(binary, *arguments):
    return subprocess.run([binary, *arguments], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name, code", [("added-node", 0), ("added-site", 0), ("refused", 1)])
def test_plan_prints_the_golden_plan(sessionfed_bin, name, code):
    result = sessionfed(sessionfed_bin, "topology", "plan", str(PLANS / "base.yaml"), str(PLANS / f"{name}.yaml"))
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == (PLANS / f"{name}.plan.txt").read_text()


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[path.stem for path in TOPOLOGIES])
def test_graph_draws_every_example_topology(sessionfed_bin, topology, tmp_path):
    sites = [line.split(":", 1)[1].strip() for line in topology.read_text().splitlines() if line.startswith("  - name:")]
    assert sites, f"no sites read from {topology}"
    drawn = {}
    for form in ("dot", "mermaid", "svg"):
        result = sessionfed(sessionfed_bin, "topology", "graph", str(topology), "--format", form)
        assert result.returncode == 0, result.stderr
        for site in sites:
            assert site in result.stdout, f"{form} of {topology.name} lacks {site}"
        drawn[form] = result.stdout
    assert drawn["mermaid"].splitlines()[3] == "flowchart LR"
    ElementTree.fromstring(drawn["svg"])  # well-formed
    if shutil.which("dot"):
        rendered = subprocess.run(["dot", "-Tsvg"], input=drawn["dot"], capture_output=True, text=True, timeout=60)
        assert rendered.returncode == 0 and "<svg" in rendered.stdout, rendered.stderr
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        svg = tmp_path / f"{topology.stem}.svg"
        svg.write_text(drawn["svg"])
        screenshot = tmp_path / f"{topology.stem}.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={screenshot}", "--window-size=1200,1000", svg.as_uri()],
            capture_output=True, timeout=120,
        )
        assert screenshot.exists(), "Chromium took no screenshot"
        assert distinct_pixel_bytes(screenshot) > 16, "the screenshot is blank: Chromium did not draw the SVG"
