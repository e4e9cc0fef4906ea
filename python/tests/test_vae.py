"""The Python package through its public API, as a user calls it: runs trained on MNIST slices,
on arrays and on a folder, their model applied to arrays, evaluation, the refusals of bad
arrays and flags, callbacks, Ctrl-C, and the reference PyTorch module where torch is
installed."""
import json
import os
import signal
import struct
import threading
import zlib

import numpy as np
import pytest

import vae

SMALL = dict(train_limit=1000, test_limit=200, batch_size=50)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tutorial's VAE, two short epochs on an MNIST slice."""
    out = tmp_path_factory.mktemp("runs") / "mnist"
    return vae.train(out, epochs=2, progress=False, **SMALL)


@pytest.fixture(scope="module")
def digits(run):
    """Three 8-bit 28×28 pictures in [0, 1]: a bar, a faint bar, a blank."""
    x = np.zeros((3, 1, 28, 28), np.float32)
    x[0, 0, 6:22, 12:16] = 1.0
    x[1, 0, 6:22, 12:16] = 51 / 255
    return x


def test_a_run_says_what_it_is(run):
    assert run.shape == (1, 28, 28) and run.latent_dim == 20 and not run.conditional
    assert run.config["model"]["hidden_dim"] == 400 and run.config["train"]["epochs"] == 2
    assert [m["epoch"] for m in run.metrics] == [1, 2]
    assert run.metrics[1]["test_loss"] < run.metrics[0]["test_loss"]
    again = vae.load(run.path)
    assert again.config == run.config and "vae.Run(" in repr(again)


def test_encode_decode_shapes_and_dtypes(run, digits):
    mu, logvar = run.encode(digits)
    assert mu.shape == logvar.shape == (3, 20) and mu.dtype == np.float32
    # [N, D] and uint8 give the same codes as [N, C, H, W] float32.
    mu2, _ = run.encode(digits.reshape(3, -1))
    mu3, _ = run.encode(np.round(digits * 255).astype(np.uint8))
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_allclose(mu, mu3, atol=1e-6)
    images = run.decode(mu)
    assert images.shape == (3, 1, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(run.reconstruct(digits), images)
    # One code alone is a batch of one.
    assert run.decode(mu[0]).shape == (1, 1, 28, 28)


def test_sampling_is_seeded(run):
    a, b = run.sample(8, seed=3), run.sample(8, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 1, 28, 28)
    assert not np.array_equal(a, run.sample(8, seed=4))
    cold = run.sample(8, seed=3, temperature=0.0, sampler="prior")
    np.testing.assert_allclose(cold, np.repeat(cold[:1], 8, axis=0))  # every z = 0
    with pytest.raises(ValueError, match='"auto", "prior" or "gmm"'):
        run.sample(2, sampler="best")


def test_interpolation_runs_from_one_reconstruction_to_the_other(run, digits):
    path = run.interpolate(digits[0], digits[2], steps=5)
    assert path.shape == (5, 1, 28, 28)
    ends = run.reconstruct(digits[[0, 2]])
    np.testing.assert_allclose(path[[0, -1]], ends, atol=1e-6)


def test_bounds_per_image(run, digits):
    elbo = run.elbo(digits, samples=50)
    iwae = run.iwae(digits, k=200)
    assert elbo.shape == iwae.shape == (3,) and elbo.dtype == np.float64
    # IWAE_k ≥ ELBO in expectation (Burda et al. 2015, theorem 1); 50 draws leave noise far
    # below the gap on these pictures.
    assert np.all(iwae > elbo - 1.0), (iwae, elbo)
    np.testing.assert_array_equal(iwae, run.iwae(digits, k=200))  # seeded
    with pytest.raises(ValueError, match="8-bit"):
        run.elbo(digits + 0.001)


def test_bad_arrays_are_refused_naming_what_was_expected(run, digits):
    cases = [
        (digits.astype(np.float64), "float32"),
        (digits[:, :, :27], r"\[N, 1, 28, 28\] or \[N, 784\]"),
        (digits.tolist(), "NumPy array"),
    ]
    for x, message in cases:
        with pytest.raises(ValueError, match=message):
            run.encode(x)
    with pytest.raises(ValueError, match=r"z must be \[N, 20\]"):
        run.decode(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="float32"):
        run.decode(np.zeros((2, 20)))
    with pytest.raises(ValueError, match="unconditional"):
        run.encode(digits, labels=[1, 2, 3])


def test_results_are_not_copied_on_the_way_out(run, digits):
    """A result's memory is the buffer Rust computed into: it is not owned by a NumPy array
    anywhere down its chain of bases (a copy would own it)."""
    for result in (run.encode(digits)[0], run.decode(run.encode(digits)[0]), run.sample(2), run.iwae(digits, k=2)):
        base = result
        while isinstance(base, np.ndarray):
            assert not base.flags.owndata, "a NumPy copy owns the data"
            base = base.base
        assert base is not None and type(base).__name__ == "PySliceContainer"


def test_flags_are_checked_as_the_command_line_checks_them(tmp_path):
    with pytest.raises(ValueError, match="--epochs"):
        vae.train(tmp_path / "a", epochs=0)
    with pytest.raises(ValueError, match="--no-such-option"):
        vae.train(tmp_path / "a", no_such_option=3)
    with pytest.raises(vae.VaeError, match="--sigma sets the standard deviation"):
        vae.train(tmp_path / "a", sigma=0.1, progress=False)
    assert "--batch-size" in vae.train.__doc__ and "--k" in vae.evaluate.__doc__


def labelled_arrays(n, seed=0):
    """n 3×8×8 colour pictures: "red" ones and "blue" ones, with their names."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, 3, 8, 8)).astype(np.float32)
    names = np.array(["red", "blue"])[np.arange(n) % 2]
    x[names == "red", 0] += 0.6
    x[names == "blue", 2] += 0.6
    return np.round(x * 255).astype(np.uint8), list(names)


def test_training_on_arrays_with_named_labels_and_a_callback(tmp_path):
    x, names = labelled_arrays(120)
    tx, tnames = labelled_arrays(20, seed=1)
    seen = []
    run = vae.train(tmp_path / "cvae", x, names, test_data=tx, test_labels=tnames, model="cvae", arch="conv",
                    widths=[8, 16], epochs=2, batch_size=20, progress=False,
                    callback=lambda epoch, m: seen.append((epoch, m["test_loss"])))
    assert run.classes == ["blue", "red"] and run.conditional and run.shape == (3, 8, 8)
    assert [e for e, _ in seen] == [1, 2] and all(loss > 0 for _, loss in seen)
    reds = run.sample(4, label="red")
    assert reds.shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="'green' is not a class"):
        run.sample(2, label="green")
    # The bound of the test split, image by image, averages to vae.evaluate's.
    report = vae.evaluate(run, k=20, elbo_samples=1, generated=0, quiet=True)
    mine = run.iwae(tx, k=20, labels=tnames).mean()
    assert report["iwae"]["k"] == 20
    assert abs(report["iwae"]["bound"]["mean"] - mine) < 1e-6 * abs(mine), (report["iwae"], mine)


def test_an_array_never_replaces_the_data_of_an_existing_run(tmp_path):
    x, names = labelled_arrays(60)
    vae.train(tmp_path / "a", x, names, arch="conv", widths=[8], epochs=1, batch_size=20, progress=False)
    before = open(tmp_path / "a" / "arrays" / "train-images.npy", "rb").read()
    with pytest.raises(vae.VaeError, match="already holds a run"):
        vae.train(tmp_path / "a", x[::-1].copy(), names[::-1], epochs=1, progress=False)
    assert open(tmp_path / "a" / "arrays" / "train-images.npy", "rb").read() == before
    # It resumes on its own arrays.
    assert len(vae.train(resume=tmp_path / "a", epochs=2, progress=False).metrics) == 2


def test_array_data_is_checked(tmp_path):
    x, names = labelled_arrays(10)
    with pytest.raises(ValueError, match="10 labels for 9 images|holds 10 labels for 9 images"):
        vae.train(tmp_path / "a", x[:9], names)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        vae.train(tmp_path / "a", np.zeros((4, 2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        vae.train(tmp_path / "a", np.full((4, 1, 8, 8), 2.0, np.float32))
    with pytest.raises(ValueError, match="data must be"):
        vae.train(tmp_path / "a", 42)


def png(path, rgb):
    """A minimal 8-bit RGB PNG of an [H, W, 3] uint8 array."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_training_on_a_folder_of_pictures(tmp_path):
    x, names = labelled_arrays(40)
    for i, (picture, name) in enumerate(zip(x, names)):
        os.makedirs(tmp_path / "pictures" / name, exist_ok=True)
        png(tmp_path / "pictures" / name / f"{i:02}.png", picture.transpose(1, 2, 0).copy())
    run = vae.train(tmp_path / "run", str(tmp_path / "pictures"), arch="conv", widths=[8], epochs=1, batch_size=8,
                    progress=False)
    assert run.shape == (3, 8, 8) and len(run.metrics) == 1


class Recorder(vae.Progress):
    def __init__(self):
        self.calls = []

    def epoch_start(self, epoch, total, steps):
        self.calls.append(("start", epoch, total, steps))

    def step(self, step, loss):
        self.calls.append(("step", step))

    def epoch_end(self, metrics, total):
        self.calls.append(("end", metrics["epoch"], total))


def test_a_progress_object_replaces_the_bar(tmp_path, capsys):
    rec = Recorder()
    vae.train(tmp_path / "a", epochs=1, progress=rec, **SMALL)
    assert rec.calls[0] == ("start", 1, 1, 20) and rec.calls[-1] == ("end", 1, 1)
    assert [c[1] for c in rec.calls if c[0] == "step"] == list(range(1, 21))
    vae.train(tmp_path / "b", epochs=1, progress=vae.Lines(), **SMALL)
    assert "epoch   1/1  train" in capsys.readouterr().out


def test_a_callback_exception_stops_training_and_the_run_resumes(tmp_path):
    def stop_after_first(epoch, metrics):
        if epoch == 1:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        vae.train(tmp_path / "a", epochs=3, progress=False, callback=stop_after_first, **SMALL)
    assert [m["epoch"] for m in vae.load(tmp_path / "a").metrics] == [1]
    run = vae.train(resume=tmp_path / "a", progress=False)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]


def test_ctrl_c_raises_keyboard_interrupt_and_keeps_the_run(tmp_path):
    """SIGINT sent from another thread while training runs with the GIL released."""
    # Python's own handler, whatever the launcher left: a shell's background job (`cmd &`)
    # starts with SIGINT ignored, and then no KeyboardInterrupt would come.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="interrupted during epoch") as caught:
            vae.train(tmp_path / "a", epochs=2_000, progress=False, **SMALL)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert "train --resume" in str(caught.value)
    kept = vae.load(tmp_path / "a").metrics if os.path.exists(tmp_path / "a" / "model.safetensors") else []
    done = len(kept)
    assert done < 2_000
    # Resumed to one more epoch than it kept.
    run = vae.train(resume=tmp_path / "a", epochs=done + 1, progress=False)
    assert len(run.metrics) == done + 1


def test_to_torch_gives_the_same_model(run, digits):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch safetensors)")
    pytest.importorskip("safetensors", reason="safetensors is not installed")
    m = run.to_torch()
    x = torch.from_numpy(digits)
    with torch.no_grad():
        mu, logvar = m.encode(x)
        mine_mu, mine_logvar = run.encode(digits)
        np.testing.assert_allclose(mu.numpy(), mine_mu, atol=1e-5)
        np.testing.assert_allclose(logvar.numpy(), mine_logvar, atol=1e-5)
        means = torch.sigmoid(m.decode(mu)).numpy().reshape(digits.shape)
        np.testing.assert_allclose(means, run.decode(mine_mu), atol=1e-5)
        # The same loss: the ELBO per image, averaged over many draws on each side.
        draws = torch.stack([m.elbo(x) for _ in range(500)])
    theirs, spread = draws.mean(0).numpy(), draws.std(0).numpy()
    mine = run.elbo(digits, samples=500)
    tolerance = 5 * spread * np.sqrt(2 / 500)
    assert np.all(np.abs(theirs - mine) < tolerance), (theirs, mine, tolerance)


def test_the_default_progress_is_tqdm_where_installed_else_lines(tmp_path, monkeypatch, capsys):
    from vae import _progress

    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # as if not installed
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    assert isinstance(_progress.default_progress(), vae.Lines)
    vae.train(tmp_path / "a", epochs=1, **SMALL)
    assert "epoch   1/1  train" in capsys.readouterr().out
    monkeypatch.undo()
    try:
        import tqdm  # noqa: F401
    except ImportError:
        pytest.skip("tqdm is not installed: the bar itself is not tried")
    assert type(_progress.default_progress()).__name__ == "Tqdm"
    vae.train(tmp_path / "b", epochs=1, **SMALL)
    shown = capsys.readouterr()
    assert "epoch   1/1  train" in shown.out and "20/20" in shown.err and "loss=" in shown.err, shown


def test_training_releases_the_gil(tmp_path):
    """A Python thread keeps running while vae trains (it could not, were the GIL held)."""
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        run = vae.train(tmp_path / "a", epochs=2, progress=False, **SMALL)
    finally:
        stop.set()
        worker.join()
    seconds = sum(m["seconds"] for m in run.metrics)
    assert count[0] > 10_000 * seconds, (count[0], seconds)


@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic-mixture"])
def test_to_torch_gives_the_same_conv_model(tmp_path, likelihood):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch safetensors)")
    pytest.importorskip("safetensors", reason="safetensors is not installed")
    x, names = labelled_arrays(60)
    run = vae.train(tmp_path / "a", x, names, model="cvae", arch="resnet", widths=[8, 16], likelihood=likelihood,
                    epochs=1, batch_size=20, progress=False, **({"mixtures": 2} if likelihood != "bernoulli" else {}))
    m = run.to_torch()
    pictures = x[:4].astype(np.float32) / 255
    labels = np.arange(4) % 2
    y = torch.nn.functional.one_hot(torch.from_numpy(labels), 2).float()
    with torch.no_grad():
        mu, logvar = m.encode(torch.from_numpy(pictures), y)
        mine_mu, mine_logvar = run.encode(pictures, labels)
        np.testing.assert_allclose(mu.numpy(), mine_mu, atol=1e-4)
        np.testing.assert_allclose(logvar.numpy(), mine_logvar, atol=1e-4)
        if likelihood == "bernoulli":
            means = torch.sigmoid(m.decode(mu, y)).numpy()
            np.testing.assert_allclose(means, run.decode(mine_mu, labels), atol=1e-5)
        draws = torch.stack([m.elbo(torch.from_numpy(pictures), y) for _ in range(300)])
    theirs, spread = draws.mean(0).numpy(), draws.std(0).numpy()
    mine = run.elbo(pictures, labels, samples=300)
    tolerance = 5 * spread * np.sqrt(2 / 300) + 1e-3 * np.abs(mine)
    assert np.all(np.abs(theirs - mine) < tolerance), (theirs, mine, tolerance)


def test_training_on_fashion_mnist_by_name(tmp_path):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    run = vae.train(tmp_path / "f", data="fashion-mnist", model="cvae", epochs=1, progress=False, **SMALL)
    assert run.classes[0] == "T-shirt/top" and run.shape == (1, 28, 28)
    assert run.sample(2, label="Sneaker").shape == (2, 1, 28, 28)
