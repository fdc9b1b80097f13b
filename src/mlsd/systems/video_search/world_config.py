"""The video-search world's sizes by scale and its vocabulary: topics made of concepts, each
concept a few synonyms (what the text of a video or a query may say for it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from mlsd.world import Scale

# A topic is a list of concepts; a concept is its synonyms, "/"-separated. The first concept
# names the topic. Real words, so that a pretrained sentence encoder knows the synonyms.
TOPICS: dict[str, tuple[str, ...]] = {
    "cooking": (
        "cooking/cookery/chef",
        "pasta/spaghetti/noodles",
        "baking/pastry/oven",
        "soup/broth/stew",
        "knife/cutting/chopping",
        "vegan/plant-based/vegetarian",
    ),
    "soccer": (
        "soccer/football/futbol",
        "goal/score/finish",
        "dribbling/skills/tricks",
        "goalkeeper/keeper/goalie",
        "penalty/spot-kick/shootout",
        "league/championship/cup",
    ),
    "guitar": (
        "guitar/acoustic/electric-guitar",
        "chords/progression/harmony",
        "solo/riff/lick",
        "tuning/tuner/pitch",
        "fingerstyle/fingerpicking/plucking",
        "strumming/rhythm/strum",
    ),
    "cats": (
        "cat/kitten/kitty",
        "purring/purr/meow",
        "litter/sandbox/tray",
        "playing/toy/laser",
        "grooming/brushing/fur",
        "funny/hilarious/silly",
    ),
    "travel": (
        "travel/trip/journey",
        "beach/coast/seaside",
        "mountains/hiking/trekking",
        "hotel/hostel/accommodation",
        "flight/airport/airline",
        "backpacking/budget/cheap",
    ),
    "cars": (
        "car/automobile/vehicle",
        "engine/motor/horsepower",
        "review/test-drive/verdict",
        "electric/ev/battery",
        "repair/fix/maintenance",
        "racing/drift/track",
    ),
    "gaming": (
        "gaming/videogame/gameplay",
        "walkthrough/playthrough/guide",
        "speedrun/record/fastest",
        "console/playstation/xbox",
        "multiplayer/online/coop",
        "boss/fight/battle",
    ),
    "fitness": (
        "workout/exercise/training",
        "yoga/stretching/flexibility",
        "running/jogging/sprint",
        "weights/lifting/barbell",
        "abs/core/crunches",
        "cardio/hiit/interval",
    ),
    "astronomy": (
        "astronomy/space/cosmos",
        "telescope/observatory/lens",
        "planet/mars/jupiter",
        "galaxy/nebula/stars",
        "eclipse/moon/lunar",
        "rocket/launch/spacecraft",
    ),
    "makeup": (
        "makeup/cosmetics/beauty",
        "lipstick/lips/gloss",
        "eyeliner/eyeshadow/mascara",
        "foundation/concealer/contour",
        "skincare/moisturizer/serum",
        "tutorial/look/routine",
    ),
    "gardening": (
        "gardening/garden/backyard",
        "tomatoes/vegetables/harvest",
        "roses/flowers/blooms",
        "compost/soil/fertilizer",
        "pruning/trimming/cutting-back",
        "seeds/sowing/seedlings",
    ),
    "finance": (
        "finance/money/investing",
        "stocks/shares/equities",
        "budget/saving/frugal",
        "crypto/bitcoin/blockchain",
        "taxes/irs/deductions",
        "retirement/pension/401k",
    ),
    "dogs": (
        "dog/puppy/doggo",
        "training/obedience/commands",
        "walking/leash/walkies",
        "breed/retriever/labrador",
        "fetch/ball/frisbee",
        "vet/health/vaccination",
    ),
    "painting": (
        "painting/art/artist",
        "watercolor/watercolour/aquarelle",
        "acrylic/canvas/brush",
        "portrait/face/sketch",
        "landscape/scenery/plein-air",
        "oil/palette/pigment",
    ),
    "chess": (
        "chess/checkmate/grandmaster",
        "opening/gambit/defense",
        "endgame/ending/pawns",
        "blitz/bullet/rapid",
        "tactics/puzzle/combination",
        "tournament/match/championship",
    ),
    "woodworking": (
        "woodworking/carpentry/joinery",
        "table/desk/bench",
        "saw/chisel/plane",
        "sanding/finish/varnish",
        "dovetail/mortise/tenon",
        "shelf/cabinet/drawer",
    ),
}
# Appears only from the world's ``trend_day``: new words the served index has never seen.
EMERGING = (
    "pickleball",
    (
        "pickleball/paddle-ball/pickle-ball",
        "dink/kitchen/volley",
        "paddle/racket/grip",
        "serve/return/lob",
        "doubles/partner/team",
        "court/net/baseline",
    ),
)
# Words that say nothing about a topic: fillers of titles, of queries and of poor text.
FILLER = (
    "best",
    "how",
    "to",
    "my",
    "new",
    "top",
    "ultimate",
    "easy",
    "guide",
    "video",
    "2026",
    "tips",
    "beginners",
    "complete",
    "the",
    "for",
    "vlog",
    "quick",
    "amazing",
    "day",
)
POOR_TITLES = ("untitled", "vid", "clip", "upload", "recording", "my video", "watch this")


@dataclass(frozen=True)
class VideoSearchConfig:
    n_topics: int  # of TOPICS (the emerging one comes on top)
    n_videos: int  # the catalogue on day 0
    new_videos_per_day: int
    n_days: int  # logged days: training, then validation, then test
    val_days: int
    test_days: int
    queries_per_day: int  # logged searches per day
    n_users: int
    n_intents: int  # distinct (topic, concepts) intents in the query model
    eval_queries: int  # distinct test queries judged against the whole catalogue
    frames: int = 4  # frames per video
    frame_size: int = 12  # pixels a side, 3 colour channels
    poor_text_share: float = 0.2  # generic title, no description, no tags
    misleading_share: float = 0.05  # text of another topic
    typo_share: float = 0.15  # queries with a misspelt word
    unsafe_share: float = 0.02  # flagged by the platform's safety classifier
    duplicate_share: float = 0.03  # re-uploads of an earlier video
    trend_day: int | None = None  # the emerging topic starts here (monitoring days)
    monitor_days: int = 4  # days after the logs, for monitoring (new vocabulary)

    @classmethod
    def for_scale(cls, scale: Scale | str) -> Self:
        s = Scale(scale)
        if s is Scale.TINY:
            return cls(
                n_topics=8,
                n_videos=600,
                new_videos_per_day=20,
                n_days=6,
                val_days=1,
                test_days=1,
                queries_per_day=400,
                n_users=150,
                n_intents=60,
                eval_queries=80,
            )
        return cls(
            n_topics=16,
            n_videos=8000,
            new_videos_per_day=200,
            n_days=10,
            val_days=2,
            test_days=2,
            queries_per_day=3000,
            n_users=2000,
            n_intents=300,
            eval_queries=400,
        )

    def with_(self, **changes: object) -> Self:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def train_days(self) -> int:
        return self.n_days - self.val_days - self.test_days

    @property
    def total_videos(self) -> int:
        return self.n_videos + self.new_videos_per_day * self.n_days
