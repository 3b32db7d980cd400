"""Demo photos that work offline: image files bundled inside the installed scikit-image package.

Only files that ship in the ``skimage/data`` folder of the wheel are used (``skimage.data`` functions can try to
download others); they are copied byte for byte.  Sources and licences, from scikit-image's docstrings:

=====================  =========  ==========================================================  =====================
file                   size       source                                                      licence
=====================  =========  ==========================================================  =====================
astronaut.png          512x512    NASA, astronaut Eileen Collins                              public domain
coffee.png             600x400    photo by Rachel Michetti                                    CC0
chelsea.png            451x300    "Chelsea the cat", photo by Stefan van der Walt             CC0
rocket.jpg             640x427    SpaceX, DSCOVR launch on Falcon 9                           public domain
hubble_deep_field.jpg  1000x872   NASA/ESA Hubble eXtreme Deep Field                          public domain
retina.jpg             1411x1411  Mikael Häggström, fundus photograph (Wikimedia Commons)      CC0
camera.png             512x512    photo by Lav Varshney (grayscale)                            CC0
brick.png              512x512    CC0Textures "Bricks25" (grayscale)                          CC0
=====================  =========  ==========================================================  =====================

Sizes are width x height.  They cover images smaller than 512 on a side (chelsea, coffee, rocket: reflect padding),
larger ones (hubble, retina: centre crop) and grayscale files (camera, brick: gray -> 3 channels).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from matbench.errors import InputError

DEMO_FILES: tuple[tuple[str, str, str], ...] = (
    ("astronaut.png", "NASA, astronaut Eileen Collins", "public domain"),
    ("coffee.png", "photo by Rachel Michetti", "CC0"),
    ("chelsea.png", "'Chelsea the cat', photo by Stefan van der Walt", "CC0"),
    ("rocket.jpg", "SpaceX, DSCOVR launch on Falcon 9", "public domain"),
    ("hubble_deep_field.jpg", "NASA/ESA Hubble eXtreme Deep Field", "public domain"),
    ("retina.jpg", "Mikael Haggstrom, fundus photograph (Wikimedia Commons)", "CC0"),
    ("camera.png", "photo by Lav Varshney (grayscale)", "CC0"),
    ("brick.png", "CC0Textures 'Bricks25' (grayscale)", "CC0"),
)


def _skimage_data_dir() -> Path:
    try:
        import importlib.util

        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError("scikit-image is not installed; the demo photos come from its bundled data "
                         "(pip install scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def demo_images(out_dir: Path, n: int = 8) -> Path:
    """Copy up to `n` bundled scikit-image photos into `out_dir` (plus SOURCES.txt); returns the folder."""
    out_dir = Path(out_dir)
    src_dir = _skimage_data_dir()
    chosen = [f for f in DEMO_FILES if (src_dir / f[0]).is_file()][: max(0, int(n))]
    if not chosen:
        raise InputError(f"{src_dir}: none of the bundled demo photos were found in this scikit-image install")
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["Demo photos copied from scikit-image's bundled data (skimage/data), unchanged.", ""]
    for name, source, licence in chosen:
        shutil.copyfile(src_dir / name, out_dir / name)
        lines.append(f"{name}\t{source}\t{licence}")
    (out_dir / "SOURCES.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir
