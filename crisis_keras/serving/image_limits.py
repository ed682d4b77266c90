"""Image dimensions from the encoded header, before any pixel is decoded.

A decompression bomb is a small file declaring a huge image: a 30,000 x
30,000 PNG of zeros compresses to a few hundred kilobytes and decodes to
2.7 GB. `image_info` reads the width and height (and, for GIF and animated
WebP, the frames) from the header of each format TensorFlow's `decode_image`
takes (PNG, JPEG, GIF, BMP, WebP), in pure Python and without decompressing
anything; `check_image` refuses an image above a pixel budget. Formats are
told apart by the magic numbers `decode_image` uses; bytes of another format
give `None`: the decoder itself then says what is wrong.

GIF: TensorFlow keeps the first frame, but giflib reads every frame's
pixels (one byte each) first, so all frames count: their areas may add up to
3 x `max_pixels` (the bytes of one RGB image at the limit).
"""

import dataclasses
from typing import Optional

# JPEG start-of-frame markers (SOF0-SOF15 without DHT C4, JPG C8, DAC CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7


class ImageHeaderError(ValueError):
    """The header is truncated or inconsistent: the image cannot decode."""


class ImageTooLarge(ValueError):
    """The header declares more pixels than allowed."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    frame_pixels: int  # all frames' areas (= width * height for a still image)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _u16(data, at, order="big"):
    return int.from_bytes(data[at:at + 2], order)


def _u32(data, at, order="big"):
    return int.from_bytes(data[at:at + 4], order)


def _png(data):
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageHeaderError("PNG header truncated (no IHDR chunk)")
    width, height = _u32(data, 16), _u32(data, 20)
    return ImageInfo("PNG", width, height, width * height)


def _jpeg(data):
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:  # extraneous bytes: libjpeg skips to the next marker too
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ImageHeaderError("JPEG has no frame header (SOF) before its image data")
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = _u16(data, i + 5), _u16(data, i + 7)
            return ImageInfo("JPEG", width, height, width * height)
        length = _u16(data, i + 2)
        if length < 2:
            raise ImageHeaderError(f"JPEG header corrupt (segment length {length} at byte {i})")
        i += 2 + length
    raise ImageHeaderError("JPEG truncated before its frame header (SOF)")


def _skip_gif_sub_blocks(data, i):
    while i < len(data):
        size = data[i]
        i += 1 + size
        if size == 0:
            return i
    return len(data) + 1  # truncated


def _gif(data):
    if len(data) < 13:
        raise ImageHeaderError("GIF header truncated")
    width, height = _u16(data, 6, "little"), _u16(data, 8, "little")
    flags = data[10]
    i = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    frame_pixels = 0
    while i < len(data):
        block = data[i]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            i = _skip_gif_sub_blocks(data, i + 2)
        elif block == 0x2C:  # image descriptor
            if i + 10 > len(data):
                break
            frame_pixels += _u16(data, i + 5, "little") * _u16(data, i + 7, "little")
            local = data[i + 9]
            i += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            i = _skip_gif_sub_blocks(data, i + 1)  # LZW code size, then the data
        else:
            break  # not a block: the decoder reports the damage
    return ImageInfo("GIF", width, height, max(frame_pixels, width * height))


def _bmp(data):
    if len(data) < 26:
        raise ImageHeaderError("BMP header truncated")
    if _u32(data, 14, "little") == 12:  # OS/2 BITMAPCOREHEADER
        width, height = _u16(data, 18, "little"), _u16(data, 20, "little")
    else:
        width = abs(int.from_bytes(data[18:22], "little", signed=True))
        height = abs(int.from_bytes(data[22:26], "little", signed=True))  # < 0: top-down
    return ImageInfo("BMP", width, height, width * height)


def _webp(data):
    if len(data) < 30:
        raise ImageHeaderError("WebP header truncated")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
        frames = 1
    elif chunk == b"VP8L":
        bits = _u32(data, 21, "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        frames = 1
    elif chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        frames, i = 0, 12
        while i + 8 <= len(data):  # count the animation frames (ANMF chunks)
            frames += data[i:i + 4] == b"ANMF"
            i += 8 + _u32(data, i + 4, "little") + (_u32(data, i + 4, "little") & 1)
        frames = max(frames, 1)
    else:
        raise ImageHeaderError(f"WebP with an unknown first chunk {chunk!r}")
    return ImageInfo("WebP", width, height, width * height * frames)


def image_info(data: bytes) -> Optional[ImageInfo]:
    """Format and declared size of encoded image bytes; None for other formats.

    Raises `ImageHeaderError` for a known format whose header is unreadable.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data.startswith(b"GIF8"):
        return _gif(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def check_image(data: bytes, max_pixels: int) -> int:
    """The pixels `data` declares (0 for an unknown format), or raises.

    `ImageTooLarge` above `max_pixels` (all GIF / WebP frames: 3 x
    `max_pixels`), `ImageHeaderError` for a header declaring no pixels or
    one that cannot be read.
    """
    info = image_info(data)
    if info is None:
        return 0
    if info.width == 0 or info.height == 0:
        raise ImageHeaderError(f"{info.format} declares {info.width} x {info.height} pixels")
    if info.pixels > max_pixels:
        raise ImageTooLarge(
            f"{info.format} declares {info.width} x {info.height} = {info.pixels:,} pixels, "
            f"above the limit of {max_pixels:,} (--max-pixels); it was not decoded")
    if info.frame_pixels > 3 * max_pixels:
        raise ImageTooLarge(
            f"animated {info.format} of {info.width} x {info.height}: its frames hold "
            f"{info.frame_pixels:,} pixels in all, above 3 x --max-pixels "
            f"({3 * max_pixels:,}); it was not decoded")
    return info.pixels
