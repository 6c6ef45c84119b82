"""Pixel conversion to 8-bit RGB, one test per rule, expected values computed by hand in the comments."""

import io

import numpy as np
import pytest
from PIL import Image

from dogiqa.io import ImageLoadError, load_image


def _roundtrip(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _gray(img) -> list[int]:
    arr = np.asarray(img)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    return arr[..., 0].ravel().tolist()


def test_16bit_png_is_scaled_by_bit_depth_not_by_its_maximum():
    # v / 257, rounded: 0 -> 0; 257 -> 1; 32896 -> 128; 65535 -> 255; 200 -> 0.778 -> 1; 128 -> 0.498 -> 0
    values = np.array([[0, 257, 32896, 65535, 200, 128]], np.uint16)
    data = _roundtrip(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert _gray(load_image(data)) == [0, 1, 128, 255, 1, 0]


def test_16bit_image_with_small_values_is_not_stretched():
    # every value <= 255: the case. 255 / 257 = 0.992 -> 1 (not 255); the mean stays near 0, not x257
    data = _roundtrip(Image.fromarray(np.full((4, 4), 255, np.uint16)), "PNG")
    assert _gray(load_image(data)) == [1] * 16


def test_16bit_big_endian_tiff():
    # 1000 / 257 = 3.89 -> 4; 51400 / 257 = 200
    data = _roundtrip(Image.fromarray(np.array([[1000, 51400]], ">u2")), "TIFF")
    assert _gray(load_image(data)) == [4, 200]


def test_pgm_with_maxval_1023():
    # Pillow rescales maxval 1023 to 0..65535: 1023 -> 65535 -> 255; 511 -> 32735 -> 127.4 -> 127; 0 -> 0
    data = b"P5\n3 1\n1023\n" + np.array([1023, 511, 0], ">u2").tobytes()
    assert _gray(load_image(data)) == [255, 127, 0]


def test_32bit_integer_image():
    # mode I on the 16-bit scale: 30000 / 257 = 116.7 -> 117; 65535 -> 255
    data = _roundtrip(Image.fromarray(np.array([[30000, 65535]], np.int32)), "TIFF")
    assert _gray(load_image(data)) == [117, 255]
    bad = _roundtrip(Image.fromarray(np.array([[70000, 0]], np.int32)), "TIFF")
    with pytest.raises(ImageLoadError, match="outside the 16-bit range"):
        load_image(bad)


@pytest.mark.parametrize(
    "values,expected",
    [
        ([0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),  # [0, 1] x 255: 63.75 -> 64, 127.5 -> 128
        ([0.0, 2.0, 100.4, 255.0], [0, 2, 100, 255]),  # max in (1, 255]: taken as 8-bit
        ([0.0, 771.0, 1000.0, 65535.0], [0, 3, 4, 255]),  # max in (255, 65535]: / 257 (771 -> 3, 1000 -> 3.9)
    ],
)
def test_float_ranges(values, expected):
    data = _roundtrip(Image.fromarray(np.array([values], np.float32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    assert _gray(load_image(data)) == expected


@pytest.mark.parametrize(
    "bad,message",
    [(np.nan, "1 NaN or infinite"), (np.inf, "1 NaN or infinite"), (-np.inf, "1 NaN or infinite"),
     (-0.5, "outside 0..65535"), (1e6, "outside 0..65535")],
)  # fmt: skip
def test_float_images_that_cannot_be_mapped_are_errors(bad, message):
    arr = np.full((3, 3), 0.5, np.float32)
    arr[1, 1] = bad  # one pixel is enough: never an all-black image scored
    with pytest.raises(ImageLoadError, match=message):
        load_image(_roundtrip(Image.fromarray(arr), "TIFF"))


def test_alpha_palette_and_bilevel_modes():
    # RGBA (255, 0, 0, 128) over white: 255*128/255 + 255*127/255 = 255; G, B: 0*0.502 + 255*0.498 = 127
    rgba = Image.new("RGBA", (1, 1), (255, 0, 0, 128))
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [255, 127, 127]
    # LA (0, 0): fully transparent black over white -> white
    assert _gray(load_image(Image.new("LA", (1, 1), (0, 0)))) == [255]
    # palette with a transparent index 0 -> white; index 1 (10, 20, 30) kept
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(load_image(pal)).reshape(-1, 3).tolist() == [[255, 255, 255], [10, 20, 30]]
    # 1-bit: 0 -> 0, 1 -> 255
    bits = Image.new("1", (2, 1))
    bits.putpixel((1, 0), 1)
    assert _gray(load_image(bits)) == [0, 255]


def test_cmyk_and_lab():
    # CMYK (0, 255, 255, 0) is pure red; (0, 0, 0, 255) black
    cmyk = Image.new("CMYK", (2, 1), (0, 255, 255, 0))
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    assert np.asarray(load_image(cmyk)).reshape(-1, 3).tolist() == [[255, 0, 0], [0, 0, 0]]
    # LAB L=255 (100), a=b=128 (neutral) -> near white
    white = np.asarray(load_image(Image.new("LAB", (1, 1), (255, 128, 128))))[0, 0]
    assert all(v >= 250 for v in white.tolist())


@pytest.mark.parametrize("orientation,size", [(1, (40, 20)), (2, (40, 20)), (3, (40, 20)), (4, (40, 20)),
                                              (5, (20, 40)), (6, (20, 40)), (7, (20, 40)), (8, (20, 40))])
def test_every_exif_orientation(orientation, size):
    # orientations 5-8 swap width and height; the marked corner ends where the tag says
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 4, 4))  # a white top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif.tobytes())
    out = load_image(buf.getvalue())
    assert out.size == size
    corner = {1: (0, 0), 2: (39, 0), 3: (39, 19), 4: (0, 19), 5: (0, 0), 6: (19, 0), 7: (19, 39), 8: (0, 39)}
    assert out.getpixel(corner[orientation]) == (255, 255, 255)
