"""Builds the folder of real colour pictures that issue 23's side-by-side uses: the icons of
seven Debian icon themes, one size of each, with every picture that another one already gives
at 32×32 left out, so that no picture is both in the training and the test split.

    apt-get install -y oxygen-icon-theme tango-icon-theme mate-icon-theme lxde-icon-theme \\
        gnome-icon-theme faenza-icon-theme adwaita-icon-theme
    python3 bench/icon_folder.py /tmp/icons            # needs Pillow (python3-pil)

The split is fixed by the folder, not by a run's seed, so runs with different seeds train
and test on the same pictures: a picture goes to OUT/test when the first 8 hex digits of its
key (below) are 0 modulo 10 (~10%), to OUT/train otherwise. Each theme is a sub-folder of
both (so `vae train --data-dir OUT` sees seven classes, which an unconditional VAE ignores),
each kept picture a copy of its PNG named after its path in the theme.

Two pictures are the same when their 32×32 RGB versions (drawn on white and resized
bilinearly with antialiasing by Pillow: as `vae train --image-size 32` reads them, up to
rounding) are equal to the byte: symbolic links, copies between themes and sizes (MATE and
GNOME share much of their artwork) all collapse to one. Near-copies (a recoloured or
re-drawn variant) stay. Prints what each theme gave."""
import hashlib, os, shutil, sys
from PIL import Image

THEMES = [  # (the one size read, a folder under /usr/share/icons; the sub-folder name)
    ("oxygen/base/64x64", "oxygen"),
    ("Tango/32x32", "tango"),
    ("mate/48x48", "mate"),
    ("nuoveXT2/48x48", "nuovext2"),
    ("gnome/48x48", "gnome"),
    ("Adwaita/48x48", "adwaita"),
    ("Faenza", "faenza"),  # Faenza's sizes are sub-folders of each category: 48 only
]


def pictures(root):
    for dirpath, _, files in sorted(os.walk(root, followlinks=True)):
        if os.path.basename(root) == "Faenza" and os.path.basename(dirpath) != "48":
            continue
        for f in sorted(files):
            if f.endswith(".png"):
                yield os.path.join(dirpath, f)


def key(path):
    with Image.open(path) as im:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        small = Image.alpha_composite(white, im).convert("RGB").resize((32, 32), Image.BILINEAR)
        return hashlib.sha256(small.tobytes()).hexdigest()


def main(out):
    if os.path.exists(out):
        sys.exit(f"{out} exists: remove it first, or name a new folder")
    seen = set()
    for folder, name in THEMES:
        root = os.path.join("/usr/share/icons", folder)
        if not os.path.isdir(root):
            sys.exit(f"{root} is missing: install the theme (see this script's header)")
        for split in ("train", "test"):
            os.makedirs(os.path.join(out, split, name))
        kept = total = tests = 0
        for path in pictures(root):
            total += 1
            try:
                k = key(path)
            except OSError as e:
                print(f"  skipped {path}: {e}")
                continue
            if k in seen:
                continue
            seen.add(k)
            kept += 1
            split = "test" if int(k[:8], 16) % 10 == 0 else "train"
            tests += split == "test"
            rel = os.path.relpath(path, root).replace(os.sep, "_")
            shutil.copyfile(path, os.path.join(out, split, name, rel))
        print(f"{name:9} {kept:5} kept of {total:5} files in {root} ({tests} to test)")
    print(f"total     {len(seen):5} distinct pictures in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/icons")
