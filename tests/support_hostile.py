"""Hostile and unusual images for the serving and predict tests (and bench/serve_load.py).

`bombs()`: tiny files whose headers declare 30,000 x 30,000 pixels (16,383 x
16,383 for WebP, its maximum), one per format the decoder takes. `formats()`:
real images in the colour modes and formats that must be classified, not
refused (CMYK JPEG, 16-bit / grayscale / palette / alpha PNG, animated GIF,
WebP, BMP, ...). `truncated_jpeg()`: the first half of a JPEG.
"""

import io
import struct
import zlib

import numpy as np

from support_runs import encode_image

BOMB_SIDE = 30_000


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(width=BOMB_SIDE, height=BOMB_SIDE):
    """A valid PNG header declaring `width` x `height` RGB, with a few rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def jpeg_bomb(width=BOMB_SIDE, height=BOMB_SIDE):
    """A small real JPEG whose frame header (SOF0) is patched to `width` x `height`."""
    data = bytearray(encode_image(0, size=(16, 16)))
    at = data.find(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width=BOMB_SIDE, height=BOMB_SIDE):
    """A small real GIF whose logical screen is patched to `width` x `height`."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_bomb(width=BOMB_SIDE, height=BOMB_SIDE):
    """A BMP header (BITMAPINFOHEADER, 24 bit) declaring `width` x `height`, no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def webp_bomb(side=16_383):
    """A lossless WebP header (VP8L) declaring `side` x `side` (the format's maximum)."""
    bits = (side - 1) | ((side - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bombs():
    return {"png": png_bomb(), "jpeg": jpeg_bomb(), "gif": gif_bomb(), "bmp": bmp_bomb(),
            "webp": webp_bomb()}


def truncated_jpeg():
    data = encode_image(5, size=(64, 80))
    return data[: len(data) // 2]


def _save(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def formats():
    """name -> encoded bytes of images the server and predict must classify."""
    from PIL import Image

    rng = np.random.default_rng(7)
    pixels = np.repeat(np.repeat(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), 8, 0), 8, 1)
    rgb = Image.fromarray(pixels)  # 72 x 88
    frames = [rgb, Image.fromarray(255 - pixels), Image.fromarray(pixels // 2)]
    return {
        "cmyk_jpeg": _save(rgb.convert("CMYK"), "JPEG"),
        "grayscale_jpeg": _save(rgb.convert("L"), "JPEG"),
        "progressive_jpeg": _save(rgb, "JPEG", progressive=True),
        "png_16bit": _save(Image.fromarray(pixels[..., 0].astype(np.uint16) * 257), "PNG"),
        "grayscale_png": _save(rgb.convert("L"), "PNG"),
        "palette_png": _save(rgb.convert("P"), "PNG"),
        "rgba_png": _save(rgb.convert("RGBA"), "PNG"),
        "gray_alpha_png": _save(rgb.convert("LA"), "PNG"),
        "animated_gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": _save(rgb, "WEBP"),
        "bmp": _save(rgb, "BMP"),
    }


def pil_rgb(data):
    """What PIL sees: the first frame as uint8 RGB (16-bit scaled to 8)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if image.mode == "I;16":
        gray = np.round(np.asarray(image).astype(np.float64) / 257).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"))
