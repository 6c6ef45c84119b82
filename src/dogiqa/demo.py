"""Demo images: public-domain photos shipped with scikit-image, each also blurred and JPEG-compressed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image, ImageFilter

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def write_demo_images(folder: str | Path) -> list[Path]:
    """Write each photo as a clean PNG, a blurred PNG and a JPEG at quality 5 (a quality ladder to score)."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PHOTOS:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        variants = {
            f"{name}.png": img,
            f"{name}-blur.png": img.filter(ImageFilter.GaussianBlur(4)),
        }
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=5)
        variants[f"{name}-jpeg5.png"] = Image.open(buf).convert("RGB")
        for file_name, variant in variants.items():
            variant.save(folder / file_name)
            written.append(folder / file_name)
    return written


if __name__ == "__main__":  # python -m dogiqa.demo FOLDER
    for path in write_demo_images(sys.argv[1] if len(sys.argv) > 1 else "demo-images"):
        print(path)
