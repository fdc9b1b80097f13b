"""One tiny run directory per running system, written by the system's own serving code: what
the cross-system tests (schemathesis, planted pickles) serve and tamper with. A new system adds
its builder to :data:`TINY_RUNS`; the tests' guards fail for a running system without one.
Imported by name: pytest puts this folder on ``sys.path`` for the conftest beside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mlsd.index import VectorIndex
from mlsd.models import LightGBMClick, NegativeDownsampled
from mlsd.systems.ad_click import features as ad_feats
from mlsd.systems.ad_click.serving import save_serving_artifacts as save_ad_click
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitConfig, fit_recommender
from mlsd.systems.video_rec.serving import save_recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
from mlsd.systems.visual_search.model import CNNEncoder
from mlsd.systems.visual_search.serving import save_serving_artifacts as save_visual
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.text import make_encoder
from mlsd.world import Scale


def ad_click_run(run: Path) -> Path:
    world = AdClickWorld(Scale.TINY, seed=0)
    log = pd.concat(list(world.iter_log()), ignore_index=True)
    X = ad_feats.offline_features(log, world.users, world.ads)
    y = log["click"].to_numpy(dtype=np.int64)
    gbdt = LightGBMClick(n_estimators=20, num_leaves=15, num_threads=1, random_state=0)
    model = NegativeDownsampled(gbdt, rate=0.5).fit(X, y)  # a model nested in a model
    tables = ad_feats.online_tables(log, world.users, world.ads)
    save_ad_click(run / "artifacts", model, "lightgbm", tables)
    (run / "metrics.json").write_text("{}")
    return run


def video_rec_run(run: Path) -> Path:
    torch.set_num_threads(1)
    cfg = VideoWorldConfig(
        n_users=120, n_videos=160, n_days=3, new_users_per_day=4, new_videos_per_day=8
    )
    w = VideoRecWorld(Scale.TINY, 0, config=cfg)
    log = w.log()  # the log adds the days' new users and videos: read it first
    titles = make_encoder("hashing").encode(w.videos["title"].tolist())
    cat = Catalogue(w.videos, titles, list(CATEGORIES))
    rec, _ = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=2, ranker_trees=20))
    save_recommender(run / "artifacts", rec, {})
    (run / "metrics.json").write_text("{}")
    return run


def visual_search_run(run: Path) -> Path:
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=4, n_eval_products=6, photos_per_product=2
    )
    w = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = w.catalog("eval")
    images = w.photos(pids, idx)
    enc = CNNEncoder(dim=16, width=4, train_steps=0).fit(images, pids)
    ids = np.arange(len(images)) + 100
    index = VectorIndex.build("flat", enc.encode(images), ids)
    labels = {int(i): f"product-{int(p)}" for i, p in zip(ids, pids, strict=True)}
    save_visual(run / "artifacts", enc, "untrained_cnn", index, 32, labels)
    (run / "metrics.json").write_text("{}")
    return run


def people_you_may_know_run(run: Path) -> Path:
    from mlsd.systems.people_you_may_know.datasets import world_graph
    from mlsd.systems.people_you_may_know.features import Snapshot
    from mlsd.systems.people_you_may_know.features_split import compute_split
    from mlsd.systems.people_you_may_know.model import HeuristicScore, PairLogistic
    from mlsd.systems.people_you_may_know.serving import batch_job, save_serving_artifacts
    from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld

    world = PymkWorld(Scale.TINY, 0, PymkConfig.for_scale(Scale.TINY).with_(n_initial=120))
    data = world_graph(world)
    split = compute_split(data, 0, "tiny")
    model = PairLogistic().fit(split.train.X, split.train.y)
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    batch = batch_job(snap, model, HeuristicScore("d_mutual").fit(split.train.X), 0)
    info = {"model": "lr", "as_of_day": data.n_days}
    save_serving_artifacts(run / "artifacts", batch.lists, data.users, data.edges, model, info)
    (run / "metrics.json").write_text("{}")
    return run


def similar_listings_run(run: Path) -> Path:
    from mlsd.systems.similar_listings.model import AttributeSimilarity
    from mlsd.systems.similar_listings.serving import (
        ListingVectors,
        build_indexes,
        save_serving_artifacts,
    )
    from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld

    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=30, n_days=1)
    listings = SimilarListingsWorld(Scale.TINY, 0, cfg).listings.reset_index(drop=True)
    listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64))
    vectors = AttributeSimilarity().fit(listings).vectors()
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        run / "artifacts", ListingVectors(ids, vectors, "attributes"), listings, indexes
    )
    (run / "metrics.json").write_text("{}")
    return run


def event_rec_run(run: Path) -> Path:
    from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
    from mlsd.systems.event_rec.model import LambdaRank
    from mlsd.systems.event_rec.serving import save_serving_artifacts, world_tables
    from mlsd.systems.event_rec.world import EventRecWorld
    from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig

    cfg = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, ab_days=1)
    w = EventRecWorld(Scale.TINY, 0, cfg)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    days = list(range(cfg.n_days))
    states = daily_states(platform, lg, days, cfg.n_hosts, w.friends, w.follows, cfg.n_slots)
    X = impression_features(platform, states, lg.impressions)
    y = lg.impressions["register"].to_numpy(np.int64)
    model = LambdaRank(n_estimators=5).fit(X, y, lg.impressions["session_id"].to_numpy())
    clock = cfg.n_days * DAY_S
    save_serving_artifacts(run / "artifacts", model, "lr", tables, clock, cfg.n_hosts, cfg.n_slots)
    (run / "metrics.json").write_text("{}")
    return run


def video_search_run(run: Path) -> Path:
    from mlsd.rng import rng
    from mlsd.systems.video_search.features import documents
    from mlsd.systems.video_search.model import TextSearch
    from mlsd.systems.video_search.model_dual import DualEncoder
    from mlsd.systems.video_search.model_fit import fusion_frame
    from mlsd.systems.video_search.model_fusion import FusionRanker
    from mlsd.systems.video_search.serving import VideoSearcher, save_serving_artifacts
    from mlsd.systems.video_search.world import VideoSearchWorld
    from mlsd.systems.video_search.world_config import VideoSearchConfig

    cfg = VideoSearchConfig.for_scale(Scale.TINY).with_(n_videos=120, n_days=2)
    w = VideoSearchWorld(Scale.TINY, 0, cfg)
    cat = w.videos[w.videos["upload_day"] < cfg.n_days].reset_index(drop=True)
    enc, docs = make_encoder("hashing"), documents(cat)
    frames = w.frames(cat["video_id"].to_numpy())
    dual = DualEncoder(dim=8, width=4, hidden=16, epochs=1)
    dual.fit(enc.encode(cat["title"].tolist()), frames, np.arange(len(cat)))
    s = VideoSearcher(
        cat,
        TextSearch().fit(docs),
        enc,
        enc.encode(docs),
        dual,
        dual.encode_videos(frames),
        None,
        "fusion",
        day=cfg.n_days,
        depth=20,
    )
    X, y, g = fusion_frame(s, w, w.queries(0, 20), rng(0, "tiny-run"))
    s.fusion = FusionRanker(n_estimators=5).fit(X, y, g)
    save_serving_artifacts(run / "artifacts", s, "hashing")
    (run / "metrics.json").write_text("{}")
    return run


def news_feed_run(run: Path) -> Path:
    from mlsd.systems.news_feed.features import Platform, impression_features, labels
    from mlsd.systems.news_feed.model_multitask import MultiTaskRanker
    from mlsd.systems.news_feed.serving import save_serving_artifacts, world_tables
    from mlsd.systems.news_feed.serving_rerank import RerankConfig
    from mlsd.systems.news_feed.world import NewsFeedWorld
    from mlsd.systems.news_feed.world_config import DAY_S, DEFAULT_WEIGHTS, FeedWorldConfig

    cfg = FeedWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, valid_days=1)
    w = NewsFeedWorld(Scale.TINY, 0, cfg)
    imp = w.log().impressions
    X = impression_features(Platform(**w.platform_tables()), imp)
    model = MultiTaskRanker(hidden=(16,), head=8, epochs=1).fit(X, labels(imp))
    clock = cfg.n_days * DAY_S
    tables = world_tables(w, imp, clock)
    art = run / "artifacts"
    save_serving_artifacts(
        art, model, "multi_task", tables, clock, DEFAULT_WEIGHTS, RerankConfig(), 48
    )
    (run / "metrics.json").write_text("{}")
    return run


def harmful_content_run(run: Path) -> Path:
    from mlsd.systems.harmful_content import CLASSES
    from mlsd.systems.harmful_content.evaluation import choose_thresholds
    from mlsd.systems.harmful_content.features import post_meta
    from mlsd.systems.harmful_content.model import Lineup, make_reps
    from mlsd.systems.harmful_content.model_fusion import HarmClassifier
    from mlsd.systems.harmful_content.model_image import ImageCNN
    from mlsd.systems.harmful_content.serving import save_serving_artifacts
    from mlsd.systems.harmful_content.world import HarmWorld
    from mlsd.systems.harmful_content.world_config import HarmWorldConfig

    cfg = HarmWorldConfig.for_scale(Scale.TINY).with_(n_posts=600, n_authors=100)
    w = HarmWorld(Scale.TINY, 0, cfg)
    posts = w.posts
    has = posts["has_image"].to_numpy()
    images = np.zeros((len(posts), cfg.image_size, cfg.image_size, 3), np.uint8)
    images[has] = w.images(np.flatnonzero(has))
    Y = w.labels()
    cnn = ImageCNN(width=4, epochs=1).fit(images[has], Y[has])
    texts = posts["text"].tolist()
    emb = make_encoder("hashing").encode(texts)
    reps = make_reps(texts, emb, images, has, post_meta(posts), cnn, len(CLASSES))
    model = HarmClassifier(hidden=(8,), epochs=1).fit(reps.early(), Y)
    lineup = Lineup({"early_multi_task": model}, cnn, np.clip(Y.mean(axis=0), 1e-6, 1))
    th = choose_thresholds(Y, model.predict_proba(reps.early()), CLASSES)
    authors = w.authors[["author_id", "signup_day", "followers", "past_violations"]]
    art, meta = run / "artifacts", reps.meta.shape[1]
    save_serving_artifacts(
        art, lineup, "early_multi_task", th, CLASSES, "hashing", cfg.image_size, authors, 30, meta
    )
    (run / "metrics.json").write_text("{}")
    return run


def street_view_blur_run(run: Path) -> Path:
    from mlsd.systems.street_view_blur.model_centernet import CenterNetDetector
    from mlsd.systems.street_view_blur.serving import save_serving_artifacts
    from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld

    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_train=8)
    data = StreetWorld(Scale.TINY, 0, cfg).labelled("train")
    model = CenterNetDetector(
        width=4, input_width=cfg.width, input_height=cfg.height, epochs=1, batch_size=4
    ).fit(data.images, data.boxes)
    info = {"width": cfg.width, "height": cfg.height}
    save_serving_artifacts(run / "artifacts", model, "centernet", (0.3, 0.3), info)
    (run / "metrics.json").write_text("{}")
    return run


TINY_RUNS: dict[str, Callable[[Path], Path]] = {
    "street-view-blur": street_view_blur_run,
    "harmful-content": harmful_content_run,
    "news-feed": news_feed_run,
    "video-search": video_search_run,
    "event-rec": event_rec_run,
    "similar-listings": similar_listings_run,
    "people-you-may-know": people_you_may_know_run,
    "ad-click": ad_click_run,
    "video-rec": video_rec_run,
    "visual-search": visual_search_run,
}
