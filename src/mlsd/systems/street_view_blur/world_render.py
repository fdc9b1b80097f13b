"""Drawing one street scene with OpenCV: the background, people, cars, hard negatives, weather.

:func:`render_scene` paints a ``height × width`` BGR image from a seeded generator and returns it
with every face and licence plate it drew: the box (``x, y, w, h`` in pixels, clipped to the
image), the class and the share of the object hidden behind an occluder. Objects are painted far
to near (by their foot line), so a near object may cover a far one; an object's visible share is
measured on the final image's object mask, not assumed.

What makes the task hard is painted on purpose: faces vary in size, skin tone, head turn,
lighting, hats, sunglasses and crowds; plates carry rendered characters under shear, scale,
blur and glare; shop signs and posters with text look like plates and round things (clocks,
balls, lamp globes with two dark dots) look like faces. The capture conditions (night, fog,
camera blur, exposure) come from :class:`Conditions`, which drift with the capture day.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE, PLATE = 0, 1
SKIN = np.array(
    [[224, 196, 173], [197, 140, 110], [160, 110, 80], [120, 80, 55], [85, 55, 40], [235, 210, 190]]
)[:, ::-1]  # RGB tones, as BGR
CHARS = "ABCEHKMOPTXY0123456789"
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Conditions:
    """How one image was captured: the world draws these per image, drifting with the day."""

    night: bool
    fog: float  # 0..1, blend towards grey
    blur: float  # camera blur, Gaussian sigma in pixels
    exposure: float  # brightness multiplier


@dataclass(frozen=True)
class DrawnObject:
    label: int  # FACE or PLATE
    box: tuple[float, float, float, float]  # x, y, w, h
    mask_id: int  # its id in the scene's object mask


def _color(r: np.random.Generator, lo: int = 40, hi: int = 220) -> tuple[int, int, int]:
    c = r.integers(lo, hi, 3)
    return int(c[0]), int(c[1]), int(c[2])


def _background(img: np.ndarray, r: np.random.Generator) -> int:
    """Sky, buildings with windows, pavement and road; returns the horizon row."""
    h, w = img.shape[:2]
    horizon = int(h * r.uniform(0.35, 0.5))
    top, bottom = np.array(_color(r, 150, 255)), np.array(_color(r, 120, 230))
    t = np.linspace(0, 1, horizon)[:, None]
    img[:horizon] = (top * (1 - t) + bottom * t)[:, None, :].astype(np.uint8)
    x = 0
    while x < w:
        bw = int(r.integers(w // 8, w // 3))
        top_y = int(r.integers(int(h * 0.05), horizon))
        cv2.rectangle(img, (x, top_y), (x + bw, horizon + 4), _color(r, 60, 200), -1)
        for wy in range(top_y + 3, horizon - 3, 7):
            for wx in range(x + 3, x + bw - 4, 7):
                shade = (30, 30, 40) if r.random() < 0.6 else (170, 210, 230)
                cv2.rectangle(img, (wx, wy), (wx + 3, wy + 3), shade, -1)
        x += bw
    kerb = horizon + int((h - horizon) * r.uniform(0.15, 0.3))
    img[horizon:kerb] = np.array(_color(r, 110, 170), np.uint8)
    img[kerb:] = np.array((90, 90, 95), np.uint8) + r.integers(-15, 15)
    for lx in range(int(r.integers(0, 20)), w, 24):
        cv2.line(img, (lx, (kerb + h) // 2), (lx + 10, (kerb + h) // 2), (220, 220, 220), 1)
    return horizon


def _text_patch(
    text: str, pw: int, ph: int, bg: tuple[int, ...], fg: tuple[int, ...]
) -> np.ndarray:
    """A ``ph × pw`` patch with ``text`` drawn at 4× and shrunk (anti-aliased characters)."""
    big = np.zeros((ph * 4, pw * 4, 3), np.uint8)
    big[:] = bg
    cv2.rectangle(big, (1, 1), (pw * 4 - 2, ph * 4 - 2), fg, 2)
    scale = ph * 4 / 34.0
    (tw, _), _ = cv2.getTextSize(text, FONT, scale, 2)
    x0 = max(2, (pw * 4 - tw) // 2)
    cv2.putText(big, text, (x0, int(ph * 4 * 0.78)), FONT, scale, fg, 2, cv2.LINE_AA)
    return cv2.resize(big, (pw, ph), interpolation=cv2.INTER_AREA)


def _paste(
    img: np.ndarray, mask: np.ndarray, patch: np.ndarray, x: int, y: int, shear: float, oid: int
) -> tuple[float, float, float, float] | None:
    """Paste ``patch`` sheared horizontally at ``(x, y)``; returns its clipped box."""
    ph, pw = patch.shape[:2]
    m = np.array([[1, shear, x - shear * y], [0, 1, y]], np.float32)
    h, w = img.shape[:2]
    warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(np.full((ph, pw), 255, np.uint8), m, (w, h)) > 127
    if not alpha.any():
        return None
    img[alpha] = warped[alpha]
    if oid:
        mask[alpha] = oid
    ys, xs = np.nonzero(alpha)
    return (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    )


def _plate_text(r: np.random.Generator) -> str:
    return "".join(CHARS[int(i)] for i in r.integers(0, len(CHARS), int(r.integers(5, 8))))


def draw_car(
    img: np.ndarray, mask: np.ndarray, r: np.random.Generator, foot: int, oid: int
) -> DrawnObject | None:
    """A car seen from behind with its plate; the plate is the object."""
    h, w = img.shape[:2]
    cw = int(np.clip(foot / h * r.uniform(0.35, 0.55) * w, 14, w * 0.6))
    ch = int(cw * r.uniform(0.55, 0.75))
    cx = int(r.integers(-cw // 4, w - cw // 2))
    top = foot - ch
    body = _color(r, 20, 235)
    cv2.rectangle(img, (cx, top + ch // 3), (cx + cw, foot - ch // 8), body, -1)
    cv2.rectangle(img, (cx + cw // 8, top), (cx + cw - cw // 8, top + ch // 3), body, -1)
    cv2.rectangle(
        img, (cx + cw // 5, top + 2), (cx + cw - cw // 5, top + ch // 3), (60, 50, 40), -1
    )
    for wx in (cx + cw // 6, cx + cw - cw // 6):
        cv2.circle(img, (wx, foot - ch // 8), max(2, ch // 6), (20, 20, 20), -1)
    pw = max(8, int(cw * r.uniform(0.26, 0.36)))
    ph = max(3, round(pw / r.uniform(3.0, 4.6)))
    bg = (235, 235, 235) if r.random() < 0.75 else (40, 200, 240)  # white or yellow plates
    patch = _text_patch(_plate_text(r), pw, ph, bg, (20, 20, 20))
    if r.random() < 0.2:  # motion / focus blur on the plate alone
        patch = cv2.GaussianBlur(patch, (0, 0), r.uniform(0.5, 1.2))
    px = cx + cw // 2 - pw // 2 + int(r.integers(-2, 3))
    py = foot - ch // 8 - ph - max(1, ch // 10)
    box = _paste(img, mask, patch, px, py, float(r.uniform(-0.25, 0.25)), oid)
    if box is not None and r.random() < 0.12:  # glare
        gx, gy = int(box[0] + r.uniform(0, box[2])), int(box[1] + box[3] / 2)
        glare = img.copy()
        cv2.ellipse(glare, (gx, gy), (int(box[2] / 3) + 1, int(box[3])), 0, 0, 360, (255,) * 3, -1)
        cv2.addWeighted(glare, 0.6, img, 0.4, 0, img)
    return None if box is None else DrawnObject(PLATE, box, oid)


def _face_features(
    img: np.ndarray,
    fx: float,
    cy: int,
    head_w: int,
    head_h: int,
    skin: np.ndarray,
    r: np.random.Generator,
) -> None:
    """Eye sockets darker than the cheeks, a lighter nose bridge, eyes or sunglasses and a mouth:
    the light-dark pattern real faces show (and Viola-Jones features look for)."""

    def shade(k: float) -> tuple[int, int, int]:
        c = np.clip(skin * k, 0, 255)
        return int(c[0]), int(c[1]), int(c[2])

    ex = max(1, round(head_w * 0.2))  # eye offset from the centre line
    ey = cy - max(1, head_h // 10)
    ew, eh = max(1, round(head_w * 0.16)), max(1, round(head_h * 0.07))
    for sx in (-ex, ex):  # sockets
        cv2.ellipse(img, (round(fx + sx), ey), (ew + 1, eh + 1), 0, 0, 360, shade(0.6), -1)
    if head_h >= 10:  # a lighter nose bridge and tip
        cv2.line(img, (round(fx), ey), (round(fx), cy + head_h // 8), shade(1.2), max(1, ew // 2))
    if r.random() < 0.18:  # sunglasses
        cv2.rectangle(
            img, (round(fx - ex - ew), ey - eh), (round(fx + ex + ew), ey + eh), (25, 25, 35), -1
        )
    else:
        for sx in (-ex, ex):
            cv2.ellipse(img, (round(fx + sx), ey), (ew, eh), 0, 0, 360, (30, 30, 40), -1)
    mw, mh = max(1, round(head_w * 0.18)), max(1, round(head_h * 0.04))
    cv2.ellipse(img, (round(fx), cy + head_h // 4), (mw, mh), 0, 0, 360, shade(0.45), -1)


def draw_person(
    img: np.ndarray, mask: np.ndarray, r: np.random.Generator, foot: int, oid: int
) -> DrawnObject | None:
    """A person: body, head with skin tone, eyes, mouth, hair; maybe a hat, sunglasses, a turn."""
    h, w = img.shape[:2]
    ph = int(np.clip(foot / h * r.uniform(0.45, 0.75) * h, 16, h * 0.9))
    head_h = max(5, int(ph * r.uniform(0.15, 0.19)))
    head_w = max(4, int(head_h * r.uniform(0.72, 0.85)))
    cx = int(r.integers(0, w))
    top = foot - ph
    shirt = _color(r)
    cv2.rectangle(img, (cx - head_w, top + head_h), (cx + head_w, top + int(ph * 0.6)), shirt, -1)
    cv2.rectangle(
        img, (cx - head_w + 1, top + int(ph * 0.6)), (cx + head_w - 1, foot), _color(r, 20, 120), -1
    )
    skin = SKIN[int(r.integers(0, len(SKIN)))] * r.uniform(0.6, 1.15)
    skin_c = tuple(int(v) for v in np.clip(skin, 0, 255))
    cy = top + head_h // 2
    face = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(face, (cx, cy), (head_w // 2, head_h // 2), 0, 0, 360, 1, -1)
    region = face.astype(bool)
    if not region.any():
        return None
    img[region] = skin_c
    mask[region] = oid
    turn = r.uniform(-0.35, 0.35) * head_w if r.random() < 0.3 else 0.0
    _face_features(img, cx + turn, cy, head_w, head_h, np.asarray(skin_c, float), r)
    hair = _color(r, 10, 90)
    cv2.ellipse(img, (cx, cy - head_h // 3), (head_w // 2, head_h // 4), 0, 180, 360, hair, -1)
    if r.random() < 0.2:  # a hat
        cv2.rectangle(
            img,
            (cx - head_w // 2 - 1, cy - head_h // 2 - head_h // 3),
            (cx + head_w // 2 + 1, cy - head_h // 3),
            _color(r),
            -1,
        )
    light = r.uniform(0.6, 1.3)  # side lighting
    half = region & (np.arange(w)[None, :] > cx)
    img[half] = np.clip(img[half] * light, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(region)
    box = (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    )
    return DrawnObject(FACE, box, oid)


def draw_decoy(img: np.ndarray, r: np.random.Generator, horizon: int) -> None:
    """A hard negative: a shop sign or a plate-like poster with text, or a face-like round."""
    h, w = img.shape[:2]
    kind = r.random()
    x, y = int(r.integers(0, w - 6)), int(r.integers(int(h * 0.1), max(int(h * 0.1) + 1, horizon)))
    if kind < 0.55:
        pw = int(r.integers(10, max(11, w // 4)))
        ph = max(4, int(pw / r.uniform(2.5, 5.0)))
        light = r.random() < 0.6  # plate-like: dark text on a light board
        bg = (230, 230, 230) if light else _color(r)
        fg = (20, 20, 20) if light else _color(r)
        word = _plate_text(r) if r.random() < 0.5 else "".join(r.choice(list("SHOPCAFEBAR"), 5))
        _paste(
            img, np.zeros(img.shape[:2], np.int32), _text_patch(word, pw, ph, bg, fg), x, y, 0.0, 0
        )
    else:
        rad = int(r.integers(2, max(3, h // 14)))
        tone = SKIN[int(r.integers(0, len(SKIN)))] if r.random() < 0.6 else np.array(_color(r))
        cv2.circle(img, (x, y), rad, tuple(int(v) for v in tone), -1)
        if r.random() < 0.6:  # a clock face or a ball with two dark dots
            for sx in (-rad // 3, rad // 3):
                cv2.circle(img, (x + sx, y - rad // 5), max(0, rad // 6), (25, 25, 25), -1)


def draw_tree(img: np.ndarray, r: np.random.Generator, horizon: int) -> None:
    h, w = img.shape[:2]
    x = int(r.integers(0, w))
    cv2.rectangle(img, (x - 1, horizon - h // 10), (x + 1, horizon + h // 8), (30, 50, 70), -1)
    cv2.circle(img, (x, horizon - h // 8), int(r.integers(h // 14, h // 7)), _color(r, 20, 140), -1)


def occlude(
    img: np.ndarray, mask: np.ndarray, r: np.random.Generator, box: tuple[float, ...]
) -> None:
    """A pole, a sign or a passer-by in front of part of an object."""
    x, y, bw, bh = box
    cover = r.uniform(0.25, 0.6)
    if r.random() < 0.5:
        x0 = int(x + (bw * (1 - cover) if r.random() < 0.5 else 0))
        x1 = int(x0 + max(1, bw * cover))
        cv2.rectangle(img, (x0, int(y) - 2), (x1, int(y + bh) + 2), _color(r, 20, 200), -1)
        mask[max(0, int(y) - 2) : int(y + bh) + 3, max(0, x0) : x1 + 1] = 0
    else:
        y0 = int(y + bh * (1 - cover))
        cv2.rectangle(
            img, (int(x) - 2, y0), (int(x + bw) + 2, int(y + bh) + 2), _color(r, 20, 200), -1
        )
        mask[max(0, y0) : int(y + bh) + 3, max(0, int(x) - 2) : int(x + bw) + 3] = 0


def capture(img: np.ndarray, cond: Conditions, r: np.random.Generator) -> np.ndarray:
    """The camera: night, fog, exposure, blur and sensor noise."""
    out = img.astype(np.float32)
    if cond.night:
        out *= np.array([0.45, 0.33, 0.3], np.float32)
    out = out * cond.exposure
    if cond.fog > 0:
        out = out * (1 - cond.fog) + 170.0 * cond.fog
    if cond.blur > 0.3:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), cond.blur), np.float32)
    out += r.normal(0, 4.0 if not cond.night else 7.0, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render_scene(
    width: int, height: int, r: np.random.Generator, cond: Conditions, crowd: float = 1.0
) -> tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float], float]]]:
    """One scene: the image and ``(label, box, occluded share)`` of every face and plate in it."""
    img = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.int32)
    horizon = _background(img, r)
    for _ in range(int(r.integers(0, 3))):
        draw_tree(img, r, horizon)
    for _ in range(int(r.integers(0, 4))):
        draw_decoy(img, r, horizon)
    n_people = int(r.poisson(1.6 * crowd))
    n_cars = int(r.poisson(1.3))
    kinds = ["person"] * n_people + ["car"] * n_cars
    feet = r.integers(horizon + height // 10, height + height // 6, len(kinds))
    drawn: list[tuple[DrawnObject, float]] = []
    for i in np.argsort(feet, kind="stable"):
        draw = draw_person if kinds[i] == "person" else draw_car
        obj = draw(img, mask, r, int(feet[i]), len(drawn) + 1)
        if obj is not None:
            drawn.append((obj, float((mask == obj.mask_id).sum())))
    for obj, _ in drawn:
        if r.random() < 0.12:
            occlude(img, mask, r, obj.box)
    img = capture(img, cond, r)
    out = []
    for obj, full in drawn:
        visible = float((mask == obj.mask_id).sum())
        _, _, bw, bh = obj.box
        if visible < 0.2 * full or bw < 2 or bh < 2:  # hidden: no longer a visible object
            continue
        out.append((obj.label, obj.box, round(1.0 - visible / max(full, 1.0), 3)))
    return img, out
