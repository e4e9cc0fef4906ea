//! The embedded MNIST files are the published ones, and datasets load from folders.

use md5::{Digest, Md5};
use std::io::Read;
use vae::data::{Dataset, FILE_NAMES, Source, embedded_files};

#[test]
fn embedded_files_have_the_published_md5_sums() {
    // From data/mnist/README.md (the canonical MNIST release).
    let want = [
        ("train-images-idx3-ubyte", 47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
        ("train-labels-idx1-ubyte", 60_008, "a25bea736e30d166cdddb491f175f624"),
        ("t10k-images-idx3-ubyte", 7_840_016, "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte", 10_008, "27ae3e4e09519cfbb04c329615203637"),
    ];
    for (gz, (name, len, md5)) in embedded_files().iter().zip(want) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(*gz).read_to_end(&mut raw).unwrap();
        assert_eq!(raw.len(), len, "{name}");
        let digest: String = Md5::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, md5, "{name}");
    }
    assert_eq!(FILE_NAMES[0], "train-images-idx3-ubyte");
}

#[test]
fn embedded_mnist_has_the_published_label_counts() {
    let d = Dataset::load(&Source::Mnist).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
    assert_eq!(d.train.shape, vae::core::Shape::mnist());
    assert_eq!(d.train.label_counts(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(d.test.label_counts(10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert_eq!(d.classes, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    // The first training image is a 5, the first test image a 7.
    assert_eq!((d.train.labels[0], d.test.labels[0]), (5, 7));
}

#[test]
fn a_folder_of_raw_files_loads_like_the_embedded_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    for (gz, name) in embedded_files().iter().zip(FILE_NAMES) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(*gz).read_to_end(&mut raw).unwrap();
        std::fs::write(dir.path().join(name), raw).unwrap();
    }
    let a = Dataset::load(&Source::Dir(dir.path().to_owned())).unwrap();
    let b = Dataset::load(&Source::Mnist).unwrap();
    assert_eq!(a.train.images, b.train.images);
    assert_eq!(a.test.labels, b.test.labels);
}

#[test]
fn fashion_mnist_loads_or_says_how_to_install_it() {
    // Installed (as .ci/run does), it must load; absent, the error says how to install it.
    let installed = std::path::Path::new("/usr/share/datasets/fashion-mnist").is_dir();
    match Dataset::load(&Source::FashionMnist) {
        Ok(d) => {
            assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
            assert_eq!(d.train.label_counts(10), [6000; 10]);
            assert_eq!((d.classes[0].as_str(), d.classes[9].as_str()), ("T-shirt/top", "Ankle boot"));
        }
        Err(e) if installed => panic!("Fashion-MNIST is installed but does not load: {e}"),
        Err(e) => {
            eprintln!("Fashion-MNIST is not installed here: only its error message is checked");
            assert!(e.to_string().contains("apt-get install dataset-fashion-mnist"), "{e}");
        }
    }
}
