"""The book's ten systems: one package each under ``mlsd.systems``, in chapter order.

Each entry is a typed :class:`System`. A system that runs has a package that follows the
skeleton of ``docs/architecture.md``; the registry reaches it through three names only:

* ``mlsd.systems.<package>.system.PIPELINE``: its :class:`mlsd.runner.Pipeline` (``mlsd run``);
* ``mlsd.systems.<package>.serving.load_scorer(run_dir, settings)``: what it serves, no HTTP;
* ``mlsd.api.routes.<package>``: its HTTP router (``mlsd serve``; see :mod:`mlsd.api`);

plus, optionally, extra CLI commands listed in :attr:`System.commands`. Nothing here imports a
system's package until it is asked for, so listing the systems stays instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsd.runner import Pipeline
    from mlsd.settings import Settings


@dataclass(frozen=True)
class System:
    """One of the book's systems, as the CLI and the server see it."""

    name: str  # the CLI name, e.g. "ad-click"
    chapter: int  # the book's chapter
    title: str
    summary: str
    package: str | None  # None while the system is planned
    # Extra CLI commands, "module:function" (a typer command function), e.g. index-images.
    commands: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return "runs" if self.package else "planned"

    def module(self, part: str) -> Any:
        """Import ``mlsd.systems.<package>.<part>`` of a system that runs."""
        return importlib.import_module(f"mlsd.systems.{self.runnable_package()}.{part}")

    def pipeline(self) -> Pipeline[Any]:
        """The system's run: title, typed state and steps (``mlsd run``)."""
        pipeline: Pipeline[Any] = self.module("system").PIPELINE
        return pipeline

    def load_scorer(self, run_dir: Path, settings: Settings) -> Any:
        """What the system serves, loaded from a run directory (no HTTP involved)."""
        return self.module("serving").load_scorer(Path(run_dir), settings)

    def runnable_package(self) -> str:
        if self.package is None:
            runnable = ", ".join(s.name for s in SYSTEMS.values() if s.package)
            raise UnknownSystemError(
                f"system {self.name!r} (chapter {self.chapter}) is planned but does not run "
                f"yet; systems that run: {runnable}"
            )
        return self.package


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System(
            "visual-search",
            2,
            "Visual Search System",
            "find images like this one: contrastive embeddings + ANN index",
            "visual_search",
            commands=("mlsd.systems.visual_search.commands:index_images",),
        ),
        System(
            "street-view-blur",
            3,
            "Google Street View Blurring System",
            "detect and blur faces and licence plates",
            "street_view_blur",
            commands=("mlsd.systems.street_view_blur.commands:blur",),
        ),
        System(
            "video-search",
            4,
            "YouTube Video Search",
            "text-to-video retrieval from visual and text signals",
            "video_search",
        ),
        System(
            "harmful-content",
            5,
            "Harmful Content Detection",
            "multimodal, multi-task classification of posts",
            "harmful_content",
            commands=("mlsd.systems.harmful_content.commands:classify_posts",),
        ),
        System(
            "video-rec",
            6,
            "Video Recommendation System",
            "candidate generation, ranking and re-ranking of a home feed",
            "video_rec",
        ),
        System(
            "event-rec",
            7,
            "Event Recommendation System",
            "learning to rank events, with location and social features",
            "event_rec",
        ),
        System(
            "ad-click",
            8,
            "Ad Click Prediction on Social Platforms",
            "calibrated click probabilities, ranked by expected value",
            "ad_click",
        ),
        System(
            "similar-listings",
            9,
            "Similar Listings on Vacation Rental Platforms",
            "session-based listing embeddings",
            "similar_listings",
        ),
        System(
            "news-feed",
            10,
            "Personalized News Feed",
            "multi-task engagement prediction for feed ranking",
            "news_feed",
        ),
        System(
            "people-you-may-know",
            11,
            "People You May Know",
            "link prediction on the social graph",
            "people_you_may_know",
        ),
    )
}


class UnknownSystemError(LookupError):
    """A system name that is not one of the book's ten (or does not run yet)."""


def get_system(name: str) -> System:
    if name not in SYSTEMS:
        known = ", ".join(SYSTEMS)
        raise UnknownSystemError(f"unknown system {name!r}; the systems are: {known}")
    return SYSTEMS[name]


def runnable_system(name: str) -> System:
    """The entry of a system that runs; :class:`UnknownSystemError` with the reason otherwise."""
    info = get_system(name)
    info.runnable_package()
    return info
