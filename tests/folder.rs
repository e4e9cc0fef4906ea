//! Image folders as datasets: classes and splits as torchvision's ImageFolder reads them,
//! colour and size handling, the cache, and every kind of bad folder.

use image::{Rgba, RgbaImage};
use std::path::Path;
use vae::core::Shape;
use vae::data::folder::{FolderError, load};
use vae::data::{Background, Color, Dataset, FolderSource, Source};

fn source(dir: &Path) -> FolderSource {
    FolderSource {
        dir: dir.to_owned(),
        image_size: None,
        color: None,
        background: Background::White,
        test_fraction: 0.25,
        split_seed: 1,
    }
}

/// A w×h picture of one colour.
fn write(path: &Path, w: u32, h: u32, px: [u8; 4]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbaImage::from_pixel(w, h, Rgba(px)).save(path).unwrap();
}

/// The tests' cache, under the target directory, so they never touch the user's. Every test
/// sets the same value; entries are keyed by the (temporary, unique) folder paths.
fn isolated() {
    // SAFETY: all tests write the same value, before any of them reads it.
    unsafe { std::env::set_var("VAE_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/vae-cache")) };
}

#[test]
fn class_folders_train_and_test_and_transparency() {
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // train/{cat,dog}, test/{cat,dog}; a grey PNG is grey, one JPEG is in colour.
    write(&d.join("train/dog/a.png"), 8, 6, [10, 10, 10, 255]);
    write(&d.join("train/cat/b.png"), 8, 6, [200, 200, 200, 255]);
    write(&d.join("train/cat/nested/c.png"), 8, 6, [0, 0, 0, 0]); // transparent: the background
    write(&d.join("test/dog/d.png"), 8, 6, [30, 30, 30, 255]);
    let (data, report) = load(&source(d), false).unwrap();
    assert_eq!(data.classes, ["cat", "dog"]);
    assert_eq!((data.train.len(), data.test.len(), report.images), (3, 1, 4));
    // Files in sorted order: train/cat/b.png, train/cat/nested/c.png, train/dog/a.png.
    assert_eq!(data.train.labels, [0, 0, 1]);
    assert_eq!(data.test.labels, [1]);
    assert_eq!(data.train.shape, Shape::new(3, 6, 8)); // RGBA PNGs are stored in colour
    assert_eq!(data.train.image(1)[..3], [255, 255, 255]); // transparent on white
    let black = FolderSource { background: Background::Black, color: Some(Color::Grey), ..source(d) };
    let (data, _) = load(&black, false).unwrap();
    assert_eq!(data.train.shape, Shape::new(1, 6, 8));
    assert_eq!(data.train.image(1)[0], 0);
    assert_eq!(data.train.image(0)[0], 200);
}

#[test]
fn grey_pictures_stay_grey_and_sizes_are_unified_on_request() {
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    image::GrayImage::from_pixel(10, 10, image::Luma([100])).save(d.join("a.png")).unwrap();
    image::GrayImage::from_pixel(20, 30, image::Luma([50])).save(d.join("b.png")).unwrap();
    let err = load(&source(d), false).unwrap_err().to_string();
    assert!(
        err.contains("differ in size")
            && err.contains("10x10")
            && err.contains("20x30")
            && err.contains("--image-size"),
        "{err}"
    );
    let (data, report) = load(&FolderSource { image_size: Some(8), test_fraction: 0.5, ..source(d) }, false).unwrap();
    assert_eq!((data.train.shape, report.color), (Shape::new(1, 8, 8), Color::Grey));
    assert!(data.classes.is_empty(), "no class folders: unlabelled");
    assert_eq!(data.train.len() + data.test.len(), 2);
    // Resizing a flat picture keeps it flat: one value per image, whatever its size was.
    let mut values: Vec<u8> = [&data.train, &data.test].iter().map(|s| s.images[0]).collect();
    values.sort();
    assert_eq!(values, [50, 100]);
    assert!(data.train.images.iter().all(|&v| v == data.train.images[0]));
}

#[test]
fn bad_files_are_skipped_and_counted_and_bad_folders_are_one_clear_error() {
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..4 {
        write(&d.join(format!("ok{i}.png")), 4, 4, [i * 60, 0, 0, 255]);
    }
    std::fs::write(d.join("broken.jpg"), b"\xff\xd8\xff\xe0 truncated jpeg").unwrap();
    std::fs::write(d.join("notes.txt"), b"hello").unwrap();
    // A PNG header claiming 100,000 x 100,000 pixels (CRC fixed): refused before decoding.
    let mut huge = Vec::new();
    RgbaImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut huge), image::ImageFormat::Png).unwrap();
    huge[16..24].copy_from_slice(&[0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0]);
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(d.join("huge.png"), &huge).unwrap();
    // A GIF whose screen is 0x0 (found by the fuzzer: it divided by zero when resized).
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zero-size.gif"), d.join("zero.gif")).unwrap();
    let (data, report) = load(&source(d), false).unwrap();
    assert_eq!(data.train.len() + data.test.len(), 4);
    let s = &report.skipped;
    assert_eq!((s.unreadable, s.not_images), (3, 1));
    let line = report.summary();
    assert!(line.contains("3 unreadable images") && line.contains("1 non-image file"), "{line}");
    assert!(line.contains("broken.jpg") && line.contains("huge.png"), "{line}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("readme.md"), b"#").unwrap();
    let err = load(&source(&empty), false).unwrap_err();
    assert!(matches!(err, FolderError::Empty { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("holds no readable images") && msg.contains("1 non-image file"), "{msg}");
    let err = load(&source(&tmp.path().join("nope")), false).unwrap_err().to_string();
    assert!(err.contains("does not exist or is not a folder"), "{err}");
    let one = tmp.path().join("one");
    write(&one.join("x.png"), 4, 4, [0; 4]);
    let err = load(&source(&one), false).unwrap_err().to_string();
    assert!(err.contains("the test split holds no readable images"), "{err}");
}

#[test]
fn the_second_load_comes_from_the_cache_and_a_change_invalidates_it() {
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..6 {
        write(&d.join(format!("c{}/{i}.png", i % 2)), 5, 5, [i * 40, 10, 20, 255]);
    }
    let (a, first) = load(&source(d), false).unwrap();
    let (b, second) = load(&source(d), false).unwrap();
    assert!(!first.cached && second.cached);
    assert_eq!((a.train.images, a.test.labels), (b.train.images, b.test.labels));
    // Another seed draws another split from the same cache.
    let (c, third) = load(&FolderSource { split_seed: 9, ..source(d) }, false).unwrap();
    assert!(third.cached);
    assert_eq!(c.train.len() + c.test.len(), 6);
    write(&d.join("c0/new.png"), 5, 5, [1, 2, 3, 255]);
    let (_, fourth) = load(&source(d), false).unwrap();
    assert!(!fourth.cached);
    // Other options are another cache entry.
    let (_, fifth) = load(&FolderSource { image_size: Some(4), ..source(d) }, false).unwrap();
    assert!(!fifth.cached);
}

#[test]
fn a_folder_written_from_idx_files_holds_the_same_images() {
    // MNIST's first 300 training and test images, as ImageFolder PNGs (the layout of
    // examples/idx_to_folder.rs): the same images and labels, grouped by class.
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let idx = Dataset::load(&Source::Mnist).unwrap();
    for (name, split) in [("train", &idx.train), ("test", &idx.test)] {
        for i in 0..300 {
            let dir = tmp.path().join(name).join(format!("digit-{}", split.labels[i]));
            std::fs::create_dir_all(&dir).unwrap();
            image::GrayImage::from_raw(28, 28, split.image(i).to_vec())
                .unwrap()
                .save(dir.join(format!("{i:05}.png")))
                .unwrap();
        }
    }
    let (folder, _) = load(&source(tmp.path()), false).unwrap();
    assert_eq!(folder.train.shape, Shape::mnist());
    assert_eq!(folder.classes, (0..10).map(|d| format!("digit-{d}")).collect::<Vec<_>>());
    for (ours, theirs) in [(&folder.train, &idx.train), (&folder.test, &idx.test)] {
        let mut a: Vec<(u8, &[u8])> = (0..300).map(|i| (ours.labels[i], ours.image(i))).collect();
        let mut b: Vec<(u8, &[u8])> = (0..300).map(|i| (theirs.labels[i], theirs.image(i))).collect();
        a.sort();
        b.sort();
        assert!(a == b, "the folder's images and labels are the IDX files'");
    }
}

/// Symbolic links are followed once: a second link to a folder already read adds nothing
/// (issue 22: a link back to a parent read the same 540 images 16 times, duplicates in both
/// splits), and a link to a folder that holds it is refused as a loop.
#[test]
#[cfg(unix)]
fn links_are_followed_once_and_loops_refused() {
    isolated();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..4u8 {
        write(&d.join(format!("data/cat/{i}.png")), 4, 4, [i * 50, 0, 0, 255]);
        write(&d.join(format!("data/dog/{i}.png")), 4, 4, [0, i * 50, 0, 255]);
    }
    // A second name for cat/, and a link to one of its files: each read once.
    std::os::unix::fs::symlink(d.join("data/cat"), d.join("data/kitten")).unwrap();
    std::os::unix::fs::symlink(d.join("data/dog/0.png"), d.join("data/dog/again.png")).unwrap();
    let (data, report) = load(&source(&d.join("data")), false).unwrap();
    assert_eq!(report.images, 8, "each image once");
    assert_eq!(data.train.len() + data.test.len(), 8);
    // A link inside the folder back to the folder: one clear error, naming the link.
    std::os::unix::fs::symlink(d.join("data"), d.join("data/dog/up")).unwrap();
    match load(&source(&d.join("data")), false) {
        Err(e @ FolderError::LinkLoop { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("dog/up leads back to") && msg.contains("remove the link"), "{msg}");
        }
        other => panic!("expected a loop error, got {:?}", other.map(|(d, _)| d.train.len())),
    }
}
