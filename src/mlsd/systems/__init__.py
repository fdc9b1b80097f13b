"""The book's ten systems: one package each under ``mlsd.systems``, in chapter order.

A system that runs exposes ``mlsd.systems.<package>.system`` with ``TITLE`` and
``steps(options) -> list[mlsd.runner.Step]`` (the runner does the rest), and
``mlsd.systems.<package>.serving`` with ``make_served_system(run_dir, settings)`` for
``mlsd serve``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class SystemInfo:
    name: str  # the CLI name, e.g. "ad-click"
    chapter: int  # the book's chapter
    title: str
    summary: str
    package: str | None  # None while the system is planned

    @property
    def status(self) -> str:
        return "runs" if self.package else "planned"


SYSTEMS: dict[str, SystemInfo] = {
    s.name: s
    for s in (
        SystemInfo(
            "visual-search",
            2,
            "Visual Search System",
            "find images like this one: contrastive embeddings + ANN index",
            "visual_search",
        ),
        SystemInfo(
            "street-view-blur",
            3,
            "Google Street View Blurring System",
            "detect and blur faces and licence plates",
            None,
        ),
        SystemInfo(
            "video-search",
            4,
            "YouTube Video Search",
            "text-to-video retrieval from visual and text signals",
            None,
        ),
        SystemInfo(
            "harmful-content",
            5,
            "Harmful Content Detection",
            "multimodal, multi-task classification of posts",
            None,
        ),
        SystemInfo(
            "video-rec",
            6,
            "Video Recommendation System",
            "candidate generation, ranking and re-ranking of a home feed",
            "video_rec",
        ),
        SystemInfo(
            "event-rec",
            7,
            "Event Recommendation System",
            "learning to rank events, with location and social features",
            None,
        ),
        SystemInfo(
            "ad-click",
            8,
            "Ad Click Prediction on Social Platforms",
            "calibrated click probabilities, ranked by expected value",
            "ad_click",
        ),
        SystemInfo(
            "similar-listings",
            9,
            "Similar Listings on Vacation Rental Platforms",
            "session-based listing embeddings",
            None,
        ),
        SystemInfo(
            "news-feed",
            10,
            "Personalized News Feed",
            "multi-task engagement prediction for feed ranking",
            None,
        ),
        SystemInfo(
            "people-you-may-know",
            11,
            "People You May Know",
            "link prediction on the social graph",
            None,
        ),
    )
}


class UnknownSystemError(LookupError):
    """A system name that is not one of the book's ten (or does not run yet)."""


def get_system(name: str) -> SystemInfo:
    if name not in SYSTEMS:
        known = ", ".join(SYSTEMS)
        raise UnknownSystemError(f"unknown system {name!r}; the systems are: {known}")
    return SYSTEMS[name]


def load_system(name: str, part: str = "system") -> ModuleType:
    """Import a module (``system`` or ``serving``) of a system that runs."""
    info = get_system(name)
    if info.package is None:
        runnable = ", ".join(s.name for s in SYSTEMS.values() if s.package)
        raise UnknownSystemError(
            f"system {name!r} (chapter {info.chapter}) is planned but does not run yet; "
            f"systems that run: {runnable}"
        )
    return importlib.import_module(f"mlsd.systems.{info.package}.{part}")
