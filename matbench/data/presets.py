"""Dataset presets: expected image count and file naming of the standard evaluation sets.

* ``places365-val``: Places365-Standard ``val_large`` (36,500 images, ``Places365_val_00000001.jpg`` ...
  ``Places365_val_00036500.jpg``).  Every expected name is known, so missing files are named exactly.
* ``celeba-hq-val``: the CelebA-HQ validation split MAT evaluates on (2,993 images).  MAT's repository does not ship the
  file list; the split is the CelebA-HQ images whose original CelebA index falls in CelebA's validation partition
  (162,771 <= index < 182,638, via CelebA-HQ-to-CelebA-mapping.txt).  We check the count, that names are unique
  CelebA-HQ numbers (``<n>.jpg`` / zero-padded, 0 <= n <= 29,999), and report names that are not.
* ``folder``: anything else; no count check.

Matching uses each id's last path component, so the images may sit in a sub-folder (``val_large/...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from matbench.errors import SpecError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    count: int | None = None
    expected_names: tuple[str, ...] | None = None  # exact basenames (without extension), if known
    name_pattern: str | None = None  # regex every basename must match, if exact names unknown
    name_check: str | None = None  # human description of name_pattern


def _places_names() -> tuple[str, ...]:
    return tuple(f"Places365_val_{i:08d}" for i in range(1, 36501))


PRESETS: dict[str, Preset] = {
    "folder": Preset("folder", "any directory tree or zip of images; no count check"),
    "places365-val": Preset(
        "places365-val", "Places365-Standard val_large: 36,500 images Places365_val_00000001 ... 00036500",
        count=36500, expected_names=_places_names()),
    "celeba-hq-val": Preset(
        "celeba-hq-val", "CelebA-HQ validation split used by MAT: 2,993 images named by CelebA-HQ number",
        count=2993, name_pattern=r"0*([0-9]{1,5})", name_check="a CelebA-HQ number 0..29999 (e.g. 12345.jpg)"),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise SpecError(f"dataset preset {name!r} is unknown (choose from {', '.join(PRESETS)})")
    return PRESETS[name]


@dataclass
class PresetReport:
    preset: str
    expected: int | None
    found: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        count_ok = self.expected is None or self.found == self.expected
        return count_ok and not self.missing and not self.unexpected and not self.duplicates

    def message(self, source: str, show: int = 5) -> str:
        """One line saying precisely what is wrong (or that all is well)."""
        if self.ok:
            exp = f" (expected {self.expected:,})" if self.expected is not None else ""
            return f"{source}: {self.found:,} images, preset {self.preset} OK{exp}"
        parts = [f"{source}: preset {self.preset} expects {self.expected:,} images, found {self.found:,}"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("duplicate names", self.duplicates)):
            if items:
                head = ", ".join(items[:show])
                more = f", ... ({len(items) - show:,} more)" if len(items) > show else ""
                parts.append(f"{len(items):,} {label}: {head}{more}")
        return "; ".join(parts)


def check_preset(ids: list[str], preset: str) -> PresetReport:
    """Compare dataset ids with a preset's expected count and names."""
    p = get_preset(preset)
    report = PresetReport(preset=p.name, expected=p.count, found=len(ids))
    if p.name == "folder":
        return report
    base = [i.rsplit("/", 1)[-1] for i in ids]
    seen: dict[str, str] = {}
    for i, b in zip(ids, base, strict=True):
        key = b
        if p.name_pattern:
            m = re.fullmatch(p.name_pattern, b)
            if not m or int(m.group(1)) > 29999:
                report.unexpected.append(i)
                continue
            key = str(int(m.group(1)))
        if key in seen:
            report.duplicates.append(f"{seen[key]} / {i}")
        else:
            seen[key] = i
    if p.expected_names is not None:
        expected = set(p.expected_names)
        report.missing = [n for n in p.expected_names if n not in seen]
        report.unexpected = [i for i, b in zip(ids, base, strict=True) if b not in expected]
    return report
