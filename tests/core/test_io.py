import io

import numpy as np
import pytest
from PIL import Image

from dogiqa.io import ImageLoadError, content_hash, expand_paths, load_image


def save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_modes_are_converted_to_rgb(tmp_path):
    gray = save(Image.fromarray(np.full((8, 9), 100, np.uint8)), tmp_path / "g.png")
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba_p = save(rgba, tmp_path / "a.png")
    pal = save(Image.new("RGB", (5, 5), (10, 20, 30)).convert("P"), tmp_path / "p.png")
    deep = save(Image.fromarray(np.full((6, 6), 65535, np.uint16)), tmp_path / "d.png")
    for p in (gray, rgba_p, pal, deep):
        img = load_image(p)
        assert img.mode == "RGB", p
    assert np.asarray(load_image(rgba_p))[0, 0].tolist() == [255, 255, 255]  # transparent over white
    assert np.asarray(load_image(deep))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(load_image(gray))[0, 0].tolist() == [100, 100, 100]


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = save(img, tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(path).size == (20, 40)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jpg", b"", "0 bytes"),
        ("notes.png", b"hello, I am text", "not an image"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as err:
        load_image(p)
    assert str(p) in str(err.value)


def test_truncated_and_missing(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="cannot decode the image data"):
        load_image(p)
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ImageLoadError, match="no image files"):
        load_image(tmp_path / "empty_dir")


def test_zero_size_and_pixel_cap(tmp_path):
    with pytest.raises(ImageLoadError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))
    p = save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="over the cap"):
        load_image(p, max_pixels=5000)
    assert load_image(p, max_pixels=None).size == (100, 100)


def test_expand_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    a = save(Image.new("RGB", (2, 2)), tmp_path / "b.png")
    b = save(Image.new("RGB", (2, 2)), tmp_path / "sub" / "a.JPG")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "nothing").mkdir()
    got = list(expand_paths([tmp_path / "sub", a, tmp_path / "missing.png", tmp_path / "nothing"]))
    assert got == [b, a, tmp_path / "missing.png", tmp_path / "nothing"]
    assert set(expand_paths([tmp_path])) == {a, b}


def test_content_hash_depends_on_pixels_only(tmp_path):
    img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    p1 = save(img, tmp_path / "x.png")
    p2 = save(img, tmp_path / "y.bmp")
    assert content_hash(load_image(p1)) == content_hash(load_image(p2))
    assert content_hash(img) != content_hash(img.rotate(90))
