"""MovieLens files: the three layouts, item metadata, and bad files named by line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.data import DataError
from mlsd.systems.video_rec.datasets import load_movielens

RATINGS = [
    (1, 10, 5, 100),
    (1, 20, 3, 101),
    (2, 10, 4, 102),
    (2, 30, 1, 103),
    (3, 20, 2, 104),
    (3, 10, 5, 105),
    (4, 10, 3, 106),
    (4, 30, 4, 107),
]


def write_layout(d: Path, layout: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if layout == "ml-100k":
        (d / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
        (d / "u.item").write_text(
            "10|Toy Story (1995)|01-Jan-1995||url|0|0|0|1"
            + "|0" * 15
            + "\n20|Heat (1995)|01-Jan-1995||url|0|1"
            + "|0" * 17
            + "\n"
        )
    elif layout == "ml-1m":
        (d / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
        (d / "movies.dat").write_text("10::Toy Story (1995)::Animation|Comedy\n20::Heat::Crime\n")
    else:
        (d / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp\n"
            + "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in RATINGS)
        )
        (d / "movies.csv").write_text('movieId,title,genres\n10,"Toy Story, The",Comedy\n')
    return d


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "ml-latest"])
def test_each_layout_is_detected_with_metadata(tmp_path: Path, layout: str) -> None:
    ml = load_movielens(str(write_layout(tmp_path / layout, layout)))
    assert ml.layout == layout and ml.has_metadata
    assert len(ml.ratings) == len(RATINGS)
    assert sorted(ml.ratings["item"].unique().tolist()) == [0, 1, 2]
    titles = dict(zip(ml.items["movie_id"], ml.items["title"], strict=True))
    assert titles[10].startswith("Toy Story") and titles[30] == "movie 30"  # no metadata: id


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\tabc\t3\t101\n")
    with pytest.raises(DataError) as err:
        load_movielens(str(tmp_path / "u.data"))
    assert err.value.line == 2 and err.value.field == "item" and "u.data" in str(err.value)


def test_short_line_and_wrong_header_and_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::1\n2\n")
    with pytest.raises(DataError, match=r"ratings.dat:2"):
        load_movielens(str(tmp_path / "ratings.dat"))
    (tmp_path / "ratings.csv").write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"ratings.csv:1"):
        load_movielens(str(tmp_path / "ratings.csv"))
    (tmp_path / "x.txt").write_text("1\t2\t3\t4\n")
    with pytest.raises(DataError, match="unknown MovieLens layout"):
        load_movielens(str(tmp_path / "x.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MovieLens ratings"):
        load_movielens(str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("5\t10\tnan\t1", r"u\.data:9: field 'rating': not a finite number: 'nan'"),
        ("5\t10\t-inf\t1", r"u\.data:9: field 'rating': not a finite number"),
        ("5\t10\t3\t1\t9", r"u\.data:9: expected 4 fields separated by '\\t', got 5"),
    ],
)
def test_non_finite_ratings_and_extra_fields_are_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    text = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS) + line + "\n"
    (tmp_path / "u.data").write_text(text)
    with pytest.raises(DataError, match=message):
        load_movielens(str(tmp_path))
